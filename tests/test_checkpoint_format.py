"""The checkpoint format (rrl_jax/checkpoint_format.py): save, load, refusals, metadata."""
import importlib

import numpy as np
import pytest

from rrl_jax import checkpoint_format
from rrl_jax.errors import UserError


def _variables():
  return {'params': {'conv': {'kernel': np.arange(6, dtype=np.float32).reshape(2, 3)}},
          'batch_stats': {'bn': {'mean': np.ones(3, np.float32)}}}


def test_variables_and_meta_round_trip(tmp_path):
  meta = {'model_name': 'rrl_net', 'model': {'widths': [2, 4]}, 'source': 'test'}
  step_dir = checkpoint_format.save_variables(str(tmp_path / 'c'), _variables(), meta,
                                              step=3)
  assert step_dir == str(tmp_path / 'c' / '3')
  variables, loaded = checkpoint_format.load_variables(str(tmp_path / 'c'))
  np.testing.assert_array_equal(variables['params']['conv']['kernel'],
                                _variables()['params']['conv']['kernel'])
  np.testing.assert_array_equal(variables['batch_stats']['bn']['mean'], np.ones(3))
  assert loaded == dict(meta, format=checkpoint_format.FORMAT)
  assert checkpoint_format.load_moving_batch_stats(str(tmp_path / 'c')) is None
  # One step directory is accepted as well as the manager directory.
  assert checkpoint_format.load_meta(step_dir) == (loaded, 3)


def test_refuses_to_overwrite_a_step(tmp_path):
  checkpoint_format.save_variables(str(tmp_path), _variables(), {})
  with pytest.raises(checkpoint_format.CheckpointError, match='step 0 already exists'):
    checkpoint_format.save_variables(str(tmp_path), _variables(), {})


def test_not_a_checkpoint_is_one_user_error(tmp_path):
  with pytest.raises(UserError, match='not an rrl_jax checkpoint'):
    checkpoint_format.load_variables(str(tmp_path))
  with pytest.raises(UserError, match='no such checkpoint directory'):
    checkpoint_format.load_meta(str(tmp_path / 'missing'))


def test_training_checkpoints_of_older_trees_still_load(tmp_path):
  # Trees before the module moves wrote source 'rrl_jax.train' (the old alias).
  meta = {'model_name': 'rrl_net', 'model': {}, 'inference_only': False,
          'source': 'rrl_jax.train'}  # old name kept
  checkpoint_format.save_variables(str(tmp_path), _variables(), meta)
  _, loaded = checkpoint_format.load_variables(str(tmp_path))
  assert loaded['source'] == 'rrl_jax.train'  # old name kept


def test_training_metadata_names_a_module_that_exists():
  from configs import test as test_config  # pylint: disable=import-outside-toplevel
  from rrl_jax.training import checkpoints  # pylint: disable=import-outside-toplevel
  meta = checkpoints.checkpoint_meta(test_config.get_config())
  assert meta['format'] == checkpoint_format.FORMAT
  assert importlib.import_module(meta['source']).train_and_evaluate
