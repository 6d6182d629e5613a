"""Pair sources: array-like row reads, views, and a disk build equal to its array."""
import numpy as np
import pytest

from rrl_jax import data
from rrl_jax.data import sources


def _array(n=20):
  return (np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 64, 64), np.uint8))


def test_indexing_like_an_array():
  array = _array()
  array[:, 1] += 100  # the two sides differ, so a wrong side or axis shows
  source = sources.ArrayPairs(array)
  assert len(source) == 20 and source.shape == (20, 2, 64, 64) and source.dtype == np.uint8
  for key in (3, -1, slice(2, 9, 3), np.array([5, 1, 5, 19]), np.arange(20) % 3 == 0,
              (np.array([4, 2]), 0), (3, 1), (-2, 0, slice(1, 5)), (slice(2, 5), 1)):
    np.testing.assert_array_equal(source[key], array[key])
  np.testing.assert_array_equal(np.asarray(source), array)
  with pytest.raises(IndexError):
    source[np.array([20])]


def test_views_read_through_to_their_base():
  array = _array()
  view = sources.ArrayPairs(array).take(np.array([7, 3, 11, 0]))
  assert view.shape == (4, 2, 64, 64)
  np.testing.assert_array_equal(view[1:3], array[[3, 11]])
  np.testing.assert_array_equal(view.take(np.array([3, 0]))[:], array[[0, 7]])


def test_disk_build_reads_the_rows_tfds_decodes(tmp_path):
  kw = dict(data_dir=str(tmp_path), num_train=16, num_val=40, num_test=8)
  patches, labels = data.open_split('synthetic', 'val', **kw)
  assert isinstance(patches, sources.ArrayRecordPairs) and labels.dtype == np.int32
  tfds_source = data.get_builder('synthetic', **kw).as_data_source('val')
  rows = np.array([39, 0, 17, 17, 5])
  want = np.stack([tfds_source[int(i)]['patches'] for i in rows])
  np.testing.assert_array_equal(patches[rows], want)
  np.testing.assert_array_equal(labels, [tfds_source[i]['label'] for i in range(40)])
  np.testing.assert_array_equal(data.load_split('synthetic', 'val', **kw)[0], np.asarray(patches))
