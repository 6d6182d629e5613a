"""A split above TFDS's 1 GB in-memory shuffle buffer builds, streamed, without TensorFlow."""
import os
import sys

import numpy as np
import pytest
from tensorflow_datasets.core import shuffle

from rrl_jax import data

pytestmark = pytest.mark.heavy(seconds=35)

NUM_PAIRS = 150_000  # 150,000 x 8 KiB = 1.23 GB of patches


def _write_pack(manual, n):
  """A VIS-NIR 'country' pack written chunk by chunk; pair i is filled with i % 251."""
  images = np.lib.format.open_memmap(os.path.join(manual, 'country.npy'), 'w+',
                                     np.uint8, (n, 2, 64, 64))
  for start in range(0, n, 10_000):
    stop = min(n, start + 10_000)
    images[start:stop] = (np.arange(start, stop) % 251).astype(np.uint8)[:, None, None, None]
  images.flush()
  del images
  np.save(os.path.join(manual, 'country_label.npy'), (np.arange(n) % 2).astype(np.uint8))


def test_split_above_one_gigabyte_builds_without_tensorflow(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  _write_pack(str(manual), NUM_PAIRS)
  builder = data.prepare(data.get_builder('vis_nir', data_dir=str(tmp_path / 'tfds'),
                                          manual_dir=str(manual), splits=('country',)))
  os.remove(manual / 'country.npy')  # Reading must not need the pack any more.
  info = builder.info.splits['country']
  assert info.num_examples == NUM_PAIRS
  assert info.num_bytes > shuffle.MAX_MEM_BUFFER_SIZE  # Above TFDS's in-memory limit.
  assert info.num_shards > 1
  source, labels = data.open_split('vis_nir', 'country', data_dir=str(tmp_path / 'tfds'),
                           manual_dir=str(manual), splits=('country',))
  rows = np.array([0, 1, 77_777, NUM_PAIRS - 1])
  np.testing.assert_array_equal(source[rows][:, 0, 5, 5], rows % 251)
  np.testing.assert_array_equal(labels[rows], rows % 2)
  assert 'tensorflow' not in sys.modules
