"""The `toy` dataset: a tiny learnable in-memory set of pairs for tests.

Not a TFDS builder: `dataset.name='toy'` with builder_kwargs num_pairs (64).
"""
from typing import Tuple

import numpy as np

TOY_DATASET = 'toy'
TOY_SEEDS = {'train': 0, 'val': 1}  # Any other split: seed 2.


def toy_split(num_pairs: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """(patches uint8 [N, 2, 64, 64], labels int32 [N]); odd pairs match."""
  rng = np.random.default_rng(seed)
  # Full-resolution noise: no exact ties for max-pooling to break differently
  # on different device counts.
  a = rng.integers(0, 256, (num_pairs, 64, 64), dtype=np.uint8)
  labels = (np.arange(num_pairs) % 2).astype(np.int32)
  b = np.where(labels[:, None, None] == 1, 255 - a, 255 - np.roll(a, 1, 0))
  return np.stack([a, b], 1).astype(np.uint8), labels
