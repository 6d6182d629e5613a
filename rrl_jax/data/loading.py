"""load_split / list_splits: build a dataset once, then load whole splits fast.

Building goes through TFDS (`download_and_prepare`), which writes into a
temporary `incomplete.*` directory and renames it only on success, and reuses an
already-built dataset instead of rebuilding it. Loading decodes the array_record
files once and keeps an .npy copy of each split beside them
(`<version dir>/rrl_npy_cache/`), keyed by the names, sizes and mtimes of the
split's record files so a changed dataset never serves a stale copy.
"""
import json
import logging
import os
from typing import Dict, List, Optional, Tuple, Type

import numpy as np
import tensorflow_datasets as tfds

from rrl_jax.data import base
from rrl_jax.data import npy_packs
from rrl_jax.data import pair_lists
from rrl_jax.data import scenes
from rrl_jax.data import synthetic

BUILDERS: Dict[str, Type[base.PatchPairBuilder]] = {
    'synthetic': synthetic.RrlSynthetic,
    'vis_nir': npy_packs.RrlVisNir,
    'os': npy_packs.RrlOs,
    'os_raw': pair_lists.RrlOsRaw,
    'sen1_2': npy_packs.RrlSen12,
    'sen1_2_raw': pair_lists.RrlSen12Raw,
    'scenes': scenes.RrlScenes,
    'roadscene': scenes.RrlRoadscene,
}
CACHE_DIR = 'rrl_npy_cache'
_DECODE_CHUNK = 8192


def get_builder(name: str, *, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                **builder_kwargs) -> base.PatchPairBuilder:
  """The (not necessarily built) TFDS builder for dataset `name`."""
  if name not in BUILDERS:
    raise ValueError(f'unknown dataset {name!r}; known: {sorted(BUILDERS)}')
  return BUILDERS[name](data_dir=data_dir, manual_dir=manual_dir, **builder_kwargs)


def prepare(builder: base.PatchPairBuilder) -> base.PatchPairBuilder:
  """Builds the dataset unless a complete build exists (never rebuilds one)."""
  if builder.is_prepared():
    logging.info('reusing built dataset %s', builder.data_dir)
    return builder
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  return builder


def list_splits(name: str, **kwargs) -> List[str]:
  """Split names of dataset `name` (building it first if needed)."""
  return sorted(prepare(get_builder(name, **kwargs)).info.splits.keys())


def _fingerprint(builder, split: str) -> Dict[str, List]:
  info = builder.info.splits[split]
  files = [os.fspath(f) for f in info.filepaths]
  return {'split': split, 'num_examples': int(info.num_examples),
          'files': [[os.path.basename(f), os.path.getsize(f), os.stat(f).st_mtime_ns]
                    for f in files]}


def _decode(builder, split: str) -> Tuple[np.ndarray, np.ndarray]:
  source = builder.as_data_source(split=split)
  n = len(source)
  patches = np.empty((n, 2, base.PATCH, base.PATCH), np.uint8)
  labels = np.empty((n,), np.int32)
  for start in range(0, n, _DECODE_CHUNK):
    rows = source.__getitems__(list(range(start, min(n, start + _DECODE_CHUNK))))
    for i, ex in enumerate(rows, start=start):
      patches[i] = ex['patches']
      labels[i] = ex['label']
  return patches, labels


def _atomic_save(path: str, array: np.ndarray) -> None:
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    np.save(f, array)
  os.replace(tmp, path)


def read_split(builder: base.PatchPairBuilder, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """A built split as (patches uint8 (N, 2, 64, 64), labels int32 (N,))."""
  if split not in builder.info.splits:
    raise ValueError(f'{builder.name}: no split {split!r}; splits: {sorted(builder.info.splits)}')
  cache = os.path.join(os.fspath(builder.data_dir), CACHE_DIR)
  stem = os.path.join(cache, split)
  key = _fingerprint(builder, split)
  try:
    with open(stem + '.json') as f:
      if json.load(f) == key:
        return np.load(stem + '.patches.npy'), np.load(stem + '.labels.npy')
  except (OSError, ValueError):
    pass
  patches, labels = _decode(builder, split)
  try:
    os.makedirs(cache, exist_ok=True)
    _atomic_save(stem + '.patches.npy', patches)
    _atomic_save(stem + '.labels.npy', labels)
    with open(stem + '.json.tmp', 'w') as f:  # the key last: it vouches for both arrays
      json.dump(key, f)
    os.replace(stem + '.json.tmp', stem + '.json')
  except OSError as e:  # a read-only data_dir still loads, just without the cache
    logging.warning('could not write the npy cache in %s: %s', cache, e)
  return patches, labels


def load_split(name: str, split: str, *, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, **builder_kwargs) -> Tuple[np.ndarray, np.ndarray]:
  """Builds `name` if needed and returns one split, whole, in memory.

  Returns (patches uint8 (N, 2, 64, 64), labels int32 (N,)); patches[:, 0] is the
  visible/optical patch, label 1 = matching (REFERENCE "Dataset formats").
  """
  builder = prepare(get_builder(name, data_dir=data_dir, manual_dir=manual_dir,
                                **builder_kwargs))
  return read_split(builder, split)
