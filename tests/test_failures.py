"""NaN stop, config-mismatch refusal."""
import os
import shutil

import pytest

from rrl_jax import checkpoint
from rrl_jax import train
from tests.train_helpers import max_abs_diff, params_of, tiny_config


@pytest.fixture(scope='module')
def two_steps(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('two_steps'))
  train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  return workdir


def test_nan_loss_stops_naming_step_and_terms(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  config = tiny_config(num_train_steps=4)
  config.loss_weights.recon_b = float('nan')
  with pytest.raises(train.NonFiniteLossError) as e:
    train.train_and_evaluate(config, workdir, allow_config_change=True)
  msg = str(e.value)
  assert 'step 3' in msg and 'recon_b' in msg and 'stage3' not in msg
  assert os.path.join('checkpoints', '2') in msg
  ckpt = os.path.join(workdir, 'checkpoints')
  assert sorted(checkpoint.manager(ckpt).all_steps()) == [2]
  assert max_abs_diff(params_of(workdir), params_of(two_steps)) == 0.0


def test_config_mismatch_is_refused(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  with pytest.raises(train.ConfigMismatchError) as e:
    train.train_and_evaluate(tiny_config(num_train_steps=2, seed=7), workdir)
  assert 'seed: 0 -> 7' in str(e.value) and '--allow_config_change' in str(e.value)


def test_run_length_change_and_allowed_change(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  # Run-length fields may change; other changes need allow_change.
  train.check_and_save_config(tiny_config(num_train_steps=9, log_every=3),
                              workdir, allow_change=False)
  train.check_and_save_config(tiny_config(seed=5), workdir, allow_change=True)
  with pytest.raises(train.ConfigMismatchError):
    train.check_and_save_config(tiny_config(seed=6), workdir, allow_change=False)
