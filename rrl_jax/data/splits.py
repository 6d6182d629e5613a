"""A run's data: the training split, the selection splits and the test splits.

Protocols (README, "Training"): 'clean' selects on a validation split (given,
or carved from training by a seeded permutation); 'paper' selects on a test
split as the official code does.
"""
from typing import Any, Dict

import numpy as np

from rrl_jax.data import sources
from rrl_jax.data.loading import open_split
from rrl_jax.data.toy import TOY_DATASET, TOY_SEEDS, toy_split
from rrl_jax.errors import ConfigError

VAL_SPLIT_SEED_OFFSET = 12345  # Carved validation: permutation seed = config.seed + this.
TEST_SAMPLE_SEED = 0  # dataset.test_max_pairs: one sample for every seed and model.


def load_data(config) -> Dict[str, Any]:
  """Returns {'train': (patches, labels), 'select': {name: (p, l)}, 'test': {...}}."""
  ds = config.dataset
  kw = dict(ds.builder_kwargs.to_dict()) if ds.get('builder_kwargs') else {}

  def load(split):
    if ds.name == TOY_DATASET:
      patches, labels = toy_split(int(kw.get('num_pairs', 64)), TOY_SEEDS.get(split, 2))
      return sources.ArrayPairs(patches), labels
    return open_split(ds.name, split, data_dir=ds.data_dir or None,
                      manual_dir=ds.manual_dir or None, **kw)

  train = load(ds.train_split)
  tests = {s: sample_pairs(*load(s), ds.get('test_max_pairs', 0)) for s in ds.test_splits}
  if config.protocol == 'paper':
    sel = ds.paper_selection_split
    select = {sel: tests[sel] if sel in tests else load(sel)} if sel else tests
  elif ds.val_split:
    select = {ds.val_split: load(ds.val_split)}
  else:
    train, select = carve_validation(train, ds, config.seed)
  if ds.get('train_positives_only', False):
    train = positives_only(train, ds.train_split)
  return {'train': train, 'select': select, 'test': tests}


def positives_only(train, split: str):
  """The matching pairs (label 1) of (patches, labels): KGL-Net trains on these only.

  Applied after the validation split is carved, so selection keeps both labels.
  """
  keep = np.flatnonzero(np.asarray(train[1]) == 1)
  if keep.size == 0:
    raise ConfigError(f'dataset.train_positives_only: training split {split!r} '
                      'has no matching pairs (label 1).')
  return train[0][keep], train[1][keep]


def carve_validation(train, ds, seed: int):
  """Splits (patches, labels) into views (train, {'val': held out}) by a seeded permutation."""
  n = len(train[1])
  n_val = int(round(ds.val_fraction * n))
  if ds.val_max_pairs > 0:
    n_val = min(n_val, ds.val_max_pairs)
  if not 0 < n_val < n:
    raise ConfigError(f'dataset.val_fraction={ds.val_fraction} carves {n_val} '
                      f'of {n} training pairs; need 0 < n_val < {n}.')
  perm = np.random.default_rng(seed + VAL_SPLIT_SEED_OFFSET).permutation(n)
  val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
  patches, labels = sources.as_source(train[0]), np.asarray(train[1])
  return ((patches.take(train_idx), labels[train_idx]),
          {'val': (patches.take(val_idx), labels[val_idx])})


def sample_pairs(patches, labels, max_pairs: int, seed: int = TEST_SAMPLE_SEED):
  """A fixed seeded sample of `max_pairs` pairs in their original order (0: all), as a view."""
  n = len(labels)
  if not max_pairs or max_pairs >= n:
    return patches, labels
  idx = np.sort(np.random.default_rng(seed).choice(n, max_pairs, replace=False))
  return sources.as_source(patches).take(idx), np.asarray(labels)[idx]
