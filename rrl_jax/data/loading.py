"""load_split / list_splits: build a dataset once, then load whole splits fast.

Building goes through TFDS (`download_and_prepare`), which writes into a
temporary `incomplete.*` directory and renames it only on success, and reuses an
already-built dataset instead of rebuilding it. Loading decodes the array_record
files once and keeps an .npy copy of each split beside them
(`<version dir>/rrl_npy_cache/`), keyed by the names, sizes and mtimes of the
split's record files so a changed dataset never serves a stale copy.
"""
import inspect
import json
import logging
import os
from typing import Dict, List, Optional, Tuple, Type

import numpy as np
import tensorflow_datasets as tfds

from rrl_jax.data import base
from rrl_jax.data import errors
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
SOURCE_FILE = 'rrl_source.json'
_DECODE_CHUNK = 8192


def get_builder(name: str, *, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                **builder_kwargs) -> base.PatchPairBuilder:
  """The (not necessarily built) TFDS builder for dataset `name`."""
  if name not in BUILDERS:
    raise ValueError(f'unknown dataset {name!r}; known: {sorted(BUILDERS)}')
  cls = BUILDERS[name]
  allowed = set(cls.OPTIONS) | {'config', 'version', 'file_format'}
  allowed |= {'pair_list_dir'} & set(inspect.signature(cls.__init__).parameters)
  unknown = sorted(set(builder_kwargs) - allowed)
  if unknown:
    raise errors.OptionError(f'{name}: unknown builder option(s) {unknown}; options: '
                             f'{sorted(allowed - {"config", "version", "file_format"})}')
  return cls(data_dir=data_dir, manual_dir=manual_dir, **builder_kwargs)


def _source(builder: base.PatchPairBuilder) -> Optional[Dict[str, str]]:
  """Where a builder reads its input ({} for generated data like 'synthetic')."""
  if not builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    return {}
  source = {'manual_dir': builder.manual_path()}
  list_dir = getattr(builder, '_pair_list_dir', None)
  if list_dir:
    source['pair_list_dir'] = os.path.abspath(os.path.expanduser(list_dir))
  return source


def _check_source(builder: base.PatchPairBuilder) -> None:
  """Warns (one line) when a reused build came from other input than asked for now."""
  try:
    with open(os.path.join(os.fspath(builder.data_dir), SOURCE_FILE)) as f:
      built = json.load(f).get('source', {})
  except (OSError, ValueError):
    return  # built before sources were recorded: nothing to compare
  asked = _source(builder)
  explicit = {'manual_dir': builder._manual_dir_override is not None,  # pylint: disable=protected-access
              'pair_list_dir': bool(getattr(builder, '_pair_list_dir', None))}
  differ = [k for k, v in asked.items() if explicit.get(k) and built.get(k) != v]
  if differ:
    what = ', '.join(f'{k}={built.get(k)} (not {asked[k]})' for k in differ)
    logging.warning('%s: the build at %s was made from %s and is used as is; to '
                    'build from the new input, delete %s or pass another data_dir.',
                    builder.name, builder.data_dir, what, builder.data_dir)


def prepare(builder: base.PatchPairBuilder) -> base.PatchPairBuilder:
  """Builds the dataset unless a complete build exists (never rebuilds one).

  The input a build was made from (manual_dir, pair_list_dir, options) is kept in
  `<version dir>/rrl_source.json`; reusing it with other input warns.
  """
  if builder.is_prepared():
    logging.info('reusing built dataset %s', builder.data_dir)
    _check_source(builder)
    return builder
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  record = {'source': _source(builder), 'options': dict(builder.options)}
  try:
    path = os.path.join(os.fspath(builder.data_dir), SOURCE_FILE)
    with open(path + '.tmp', 'w') as f:
      json.dump(record, f, indent=1, default=list)
    os.replace(path + '.tmp', path)
  except OSError as e:
    logging.warning('could not record the build source in %s: %s', builder.data_dir, e)
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
               manual_dir: Optional[str] = None, both_classes: bool = True,
               **builder_kwargs) -> Tuple[np.ndarray, np.ndarray]:
  """Builds `name` if needed and returns one split, whole, in memory.

  A split with one class only raises DataFormatError (`both_classes=False`
  skips the check).

  Returns (patches uint8 (N, 2, 64, 64), labels int32 (N,)); patches[:, 0] is the
  visible/optical patch, label 1 = matching (docs/data.md).
  """
  builder = prepare(get_builder(name, data_dir=data_dir, manual_dir=manual_dir,
                                **builder_kwargs))
  patches, labels = read_split(builder, split)
  if both_classes:
    check_both_classes(name, split, labels, builder.data_dir)
  return patches, labels


def check_both_classes(name: str, split: str, labels: np.ndarray, where: str = '') -> None:
  """Raises DataFormatError when a split holds one class only (no FPR95, no training)."""
  present = np.unique(labels)
  if len(present) < 2:
    only = 'matching (1)' if len(present) and present[0] == 1 else 'non-matching (0)'
    raise errors.DataFormatError(
        f'dataset {name}, split {split}: all {len(labels)} pairs are {only}; training '
        f'and evaluation need both classes (check the labels of its source'
        f'{", built at " + os.fspath(where) if where else ""}).')
