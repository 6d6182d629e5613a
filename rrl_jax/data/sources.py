"""Random-access pair sources: a split read by rows, never whole (README, "Datasets").

A source looks like a read-only uint8 array (N, 2, 64, 64) (len, shape, dtype,
ndim) and `source[rows]` (an int, slice or index array, any order, repeats
allowed) reads only those rows. Every consumer (the training iterator, scoring,
precise BN) gathers batches from it, so memory does not grow with the split:
- `ArrayRecordPairs`: a TFDS array_record build (checked through
  `builder.as_data_source`, read with one array_record reader per shard);
- `ArrayPairs`: any array, in memory or memory-mapped (the toy set, user packs);
- `source.take(indices)`: a view of a subset (validation carve, test_max_pairs).
`np.asarray(source)` reads the whole split: only for data a user asks to hold.
"""
import os
import threading
from typing import Any, List

import numpy as np

from tensorflow_datasets.proto import tf_example_pb2

from rrl_jax.data import errors

PATCH = 64


class PairSource:
  """Base: subclasses implement `_rows(indices int64 (K,)) -> uint8 (K, 2, 64, 64)`."""
  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, num_pairs: int):
    self._num_pairs = int(num_pairs)

  def __len__(self) -> int:
    return self._num_pairs

  @property
  def shape(self):
    return (self._num_pairs, 2, PATCH, PATCH)

  def _rows(self, indices: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def _indices(self, key: Any) -> np.ndarray:
    if isinstance(key, slice):
      return np.arange(*key.indices(len(self)), dtype=np.int64)
    indices = np.asarray(key)
    if indices.dtype == np.bool_:
      return np.flatnonzero(indices)
    if not np.issubdtype(indices.dtype, np.integer):
      raise IndexError(f'pair sources take integer rows, slices or masks, not {key!r}')
    indices = np.where(indices < 0, indices + len(self), indices).astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f'row out of range for a source of {len(self)} pairs')
    return indices

  def __getitem__(self, key: Any) -> np.ndarray:
    if isinstance(key, tuple):  # e.g. source[rows, 0]: read the rows, then index them
      rows = self[key[0]]
      if isinstance(key[0], (int, np.integer)):  # source[i, 0]: one row, no row axis
        return rows[key[1:]]
      return rows[(slice(None),) + key[1:]]
    if isinstance(key, (int, np.integer)):
      return self._rows(self._indices(np.array([key])))[0]
    indices = self._indices(key)
    return self._rows(indices.reshape(-1)).reshape(indices.shape + self.shape[1:])

  def __array__(self, dtype=None, copy=None):  # pylint: disable=unused-argument
    whole = self[:]
    return whole if dtype is None else whole.astype(dtype)

  def take(self, indices: np.ndarray) -> 'PairSource':
    """A view of rows `indices` (nothing is read until it is indexed)."""
    return Subset(self, self._indices(indices))


class ArrayPairs(PairSource):
  """A source over an array (N, 2, 64, 64), in memory or memory-mapped."""

  def __init__(self, array: np.ndarray):
    super().__init__(len(array))
    self._array = array
    self.dtype = np.dtype(array.dtype)

  @property
  def shape(self):
    return tuple(self._array.shape)

  def _rows(self, indices):
    return np.asarray(self._array[indices])


class Subset(PairSource):
  """Rows `indices` of another source, in that order."""

  def __init__(self, base: PairSource, indices: np.ndarray):
    super().__init__(len(indices))
    self._base, self._map = base, np.asarray(indices, np.int64)
    self.dtype = base.dtype

  @property
  def shape(self):
    return (len(self),) + tuple(self._base.shape[1:])

  def _rows(self, indices):
    return self._base._rows(self._map[indices])  # pylint: disable=protected-access


def as_source(patches: Any) -> PairSource:
  """`patches` itself when it is a source, else an ArrayPairs over it."""
  return patches if isinstance(patches, PairSource) else ArrayPairs(patches)


class ArrayRecordPairs(PairSource):
  """Split `split` of a built TFDS dataset, read by rows from its array_record shards."""

  def __init__(self, builder, split: str):
    self.where = os.fspath(builder.data_dir)
    self.split = split
    self._name = builder.name
    expected = int(builder.info.splits[split].num_examples)
    try:
      self._source = builder.as_data_source(split=split)
      found = len(self._source)
    except Exception as e:  # pylint: disable=broad-except
      raise self.damaged(e) from None
    if found != expected:
      raise self.damaged(f'its shards hold {found} pairs, its dataset_info.json {expected}')
    super().__init__(found)
    info = builder.info.splits[split]
    self._paths = [os.fspath(p) for p in info.filepaths]
    self._ends = np.cumsum(info.shard_lengths)
    self._readers: List[Any] = [None] * len(self._paths)
    self._lock = threading.Lock()

  def damaged(self, why) -> errors.DataError:
    """The one-line error for an unreadable build: what, where, and what to do."""
    if isinstance(why, BaseException):
      why = f'{type(why).__name__}: {str(why).strip().splitlines()[0] if str(why).strip() else ""}'
    return errors.DataFormatError(
        f'{self._name}, split {self.split}: the build at {self.where} is damaged ({why}); '
        f'delete {self.where} and rerun to rebuild it.')

  def _reader(self, shard: int):
    if self._readers[shard] is None:
      from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
      with self._lock:
        if self._readers[shard] is None:
          self._readers[shard] = array_record_module.ArrayRecordReader(
              self._paths[shard], 'readahead_buffer_size:0')
    return self._readers[shard]

  def _records(self, rows) -> list:
    """Raw serialized examples of `rows` (array_record reads, no decoding).

    Read shard by shard in the calling thread: the callers (grain's workers,
    scoring) bring their own threads, and TFDS's data source started a thread
    pool per call, one thread per shard touched, which halved the rate of
    64-pair batches on a 13-shard split (docs/benchmarks.md, data at scale).
    """
    rows = np.asarray(rows, np.int64).reshape(-1)
    shards = np.searchsorted(self._ends, rows, side='right')
    records: list = [None] * len(rows)
    try:
      for shard in np.unique(shards):
        where = np.flatnonzero(shards == shard)
        start = self._ends[shard - 1] if shard else 0
        for i, record in zip(where, self._reader(shard).read((rows[where] - start).tolist())):
          records[i] = record
    except Exception as e:  # pylint: disable=broad-except
      raise self.damaged(e) from None
    return records

  def _features(self, record: bytes):
    try:
      return tf_example_pb2.Example.FromString(record).features.feature
    except Exception as e:  # pylint: disable=broad-except
      raise self.damaged(e) from None

  def _rows(self, indices):
    """Decodes the 'patches' bytes of each example directly (base.py writes them raw)."""
    unique, inverse = np.unique(indices, return_inverse=True)
    out = np.empty((len(unique), 2, PATCH, PATCH), np.uint8)
    for i, record in enumerate(self._records(unique.tolist())):
      blob = self._features(record)['patches'].bytes_list.value
      if len(blob) != 1 or len(blob[0]) != out[i].nbytes:
        raise self.damaged(f'row {unique[i]} holds no 2x64x64 uint8 patches')
      out[i] = np.frombuffer(blob[0], np.uint8).reshape(2, PATCH, PATCH)
    return out[inverse.reshape(-1)]

  def labels(self, chunk: int = 8192) -> np.ndarray:
    """All labels int32 (N,), read chunk by chunk."""
    labels = np.empty((len(self),), np.int32)
    for start in range(0, len(self), chunk):
      records = self._records(list(range(start, min(len(self), start + chunk))))
      for i, record in enumerate(records, start):
        value = self._features(record)['label'].int64_list.value
        labels[i] = value[0] if len(value) == 1 else -1  # -1: refused by the caller
    return labels
