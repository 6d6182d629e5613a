"""rrl_jax/data/splits.py: a run's training, selection and test data."""
import json
import os

import numpy as np
import pytest

from rrl_jax.data import splits
from rrl_jax.training import config_validation
from rrl_jax.training import workdir as workdir_lib
from tests.train_helpers import tiny_config


def test_carved_validation_is_disjoint_and_seeded():
  data = splits.load_data(tiny_config())
  again = splits.load_data(tiny_config())
  other_seed = splits.load_data(tiny_config(seed=1))
  (train_p, _), (val_p, _) = data['train'], data['select']['val']
  assert len(train_p) + len(val_p) == 64 and len(val_p) == 16
  rows = lambda p: {x.tobytes() for x in p}
  assert not rows(train_p) & rows(val_p)
  np.testing.assert_array_equal(val_p, again['select']['val'][0])
  assert rows(val_p) != rows(other_seed['select']['val'][0])


def test_test_max_pairs_scores_one_fixed_sample_for_every_seed():
  full = splits.load_data(tiny_config())['test']['test']
  sampled = [splits.load_data(tiny_config(**{'dataset.test_max_pairs': 20, 'seed': s}))
             ['test']['test'] for s in (0, 1)]
  (p0, l0), (p1, l1) = sampled
  assert len(l0) == 20
  np.testing.assert_array_equal(p0, p1)
  np.testing.assert_array_equal(l0, l1)
  # A subset of the split, in the split's order.
  index = {x.tobytes(): i for i, x in enumerate(full[0])}
  positions = [index[x.tobytes()] for x in p0]
  assert positions == sorted(positions)
  np.testing.assert_array_equal(l0, full[1][positions])


def test_test_max_pairs_larger_than_the_split_keeps_every_pair():
  p, l = splits.sample_pairs(np.arange(10), np.arange(10) % 2, 50)
  np.testing.assert_array_equal(p, np.arange(10))


def test_negative_test_max_pairs_is_refused_naming_the_field():
  problems = config_validation.config_problems(tiny_config(**{'dataset.test_max_pairs': -5}))
  assert any('config.dataset.test_max_pairs=-5' in p for p in problems), problems


def test_runs_saved_before_test_max_pairs_existed_still_resume(tmp_path):
  config = tiny_config()
  saved = workdir_lib.config_to_dict(config)
  del saved['dataset']['test_max_pairs']
  with open(os.path.join(tmp_path, workdir_lib.CONFIG_FILE), 'w') as f:
    json.dump(saved, f)
  workdir_lib.check_config(config, str(tmp_path), allow_change=False)  # no error
  config.dataset.test_max_pairs = 3000  # evaluation only: may change on restart
  workdir_lib.check_config(config, str(tmp_path), allow_change=False)
