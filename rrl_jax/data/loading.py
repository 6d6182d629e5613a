"""open_split / list_splits: build a dataset once, then read its splits by rows.

Building goes through TFDS (`download_and_prepare`), which writes into a
temporary `incomplete.*` directory and renames it only on success, and reuses an
already-built dataset instead of rebuilding it. Reading opens the array_record
shards for random access (sources.ArrayRecordPairs); only the labels are held in
memory, cached beside the shards (`<version dir>/rrl_npy_cache/`).
"""
import glob
import hashlib
import inspect
import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple, Type

import numpy as np
import tensorflow_datasets as tfds

from rrl_jax.data import base
from rrl_jax.data import errors
from rrl_jax.data import npy_packs
from rrl_jax.data import pair_lists
from rrl_jax.data import scenes
from rrl_jax.data import sources
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
  try:
    return cls(data_dir=data_dir, manual_dir=manual_dir, **builder_kwargs)
  except (errors.DataError, TypeError):
    raise
  except Exception as e:  # pylint: disable=broad-except  # e.g. a damaged dataset_info.json
    damaged = _unreadable_infos(data_dir, cls.name) or ['its version directory']
    raise errors.DataFormatError(
        f'{name}: cannot open the existing build ({type(e).__name__}: '
        f'{str(e).strip().splitlines()[0] if str(e).strip() else ""}); delete '
        f'{os.path.dirname(damaged[0]) if damaged[0].endswith(".json") else damaged[0]} '
        'and rerun to rebuild it.') from None


def _unreadable_infos(data_dir: Optional[str], builder_name: str) -> List[str]:
  """dataset_info.json files under data_dir/builder_name that are not valid JSON."""
  root = os.path.join(os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR),
                      builder_name)
  bad = []
  for path in sorted(glob.glob(os.path.join(root, '*', '*', 'dataset_info.json'))):
    try:
      with open(path) as f:
        json.load(f)
    except (OSError, ValueError):
      bad.append(path)
  return bad


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
  config_dir = os.path.dirname(os.fspath(builder.data_dir).rstrip(os.sep))
  for path in base.clean_abandoned(config_dir):
    logging.warning('%s: deleted %s, left by a build that was killed.', builder.name, path)
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  except errors.DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # one line, not TFDS's traceback
    message = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise errors.DataError(
        f'{builder.name}: building {builder.data_dir} failed with {type(e).__name__}: '
        f'{message}; check the input and the free space there, then rerun.') from None
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
  files = []
  for f in map(os.fspath, info.filepaths):
    if not os.path.exists(f):
      raise errors.DataFormatError(
          f'{builder.name}, split {split}: the build at {builder.data_dir} is damaged '
          f'({os.path.basename(f)} is missing); delete {builder.data_dir} and rerun to '
          'rebuild it.')
    files.append([os.path.basename(f), os.path.getsize(f), os.stat(f).st_mtime_ns])
  return {'split': split, 'num_examples': int(info.num_examples), 'files': files}


def _digest(labels: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(labels, np.int32).tobytes()).hexdigest()


def _cached_labels(stem: str, key: Dict[str, Any]) -> Optional[np.ndarray]:
  """The cached labels if their key and checksum match and they load, else None."""
  try:
    with open(stem + '.json') as f:
      record = json.load(f)
    if record.get('key') != key:
      return None
    labels = np.load(stem + '.labels.npy', allow_pickle=False)
  except (OSError, ValueError, EOFError):
    return None
  if labels.shape != (key['num_examples'],) or _digest(labels) != record.get('sha256'):
    logging.warning('%s.labels.npy is corrupt; reading the labels again from the shards.', stem)
    return None
  return labels.astype(np.int32)


def split_labels(builder: base.PatchPairBuilder, split: str,
                 source: Optional[sources.ArrayRecordPairs] = None) -> np.ndarray:
  """The labels int32 (N,) of a built split, from a checked cache beside the shards.

  The cache (`<version dir>/rrl_npy_cache/<split>.labels.npy`) is keyed by the
  names, sizes and mtimes of the split's shards and carries a checksum: a stale or
  damaged copy is read again from the shards, never used.
  """
  stem = os.path.join(os.fspath(builder.data_dir), CACHE_DIR, split)
  key = _fingerprint(builder, split)
  labels = _cached_labels(stem, key)
  if labels is not None:
    return labels
  labels = (source or sources.ArrayRecordPairs(builder, split)).labels()
  bad = ~np.isin(labels, (0, 1))
  if bad.any():
    raise errors.DataFormatError(
        f'{builder.name}, split {split}: the build at {builder.data_dir} holds labels other '
        f'than 0/1 ({np.unique(labels[bad])[:5].tolist()}); delete {builder.data_dir} and '
        'rerun to rebuild it.')
  try:
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    tmp = f'{stem}.labels.npy.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
      np.save(f, labels)
    os.replace(tmp, stem + '.labels.npy')
    with open(f'{stem}.json.tmp{os.getpid()}', 'w') as f:  # the key last: it vouches for the labels
      json.dump({'key': key, 'sha256': _digest(labels)}, f)
    os.replace(f'{stem}.json.tmp{os.getpid()}', stem + '.json')
    if os.path.exists(stem + '.patches.npy'):  # an older version's whole-split copy
      os.remove(stem + '.patches.npy')
      logging.info('deleted %s.patches.npy (splits are read from the shards now)', stem)
  except OSError as e:  # a read-only data_dir still loads, just without the cache
    logging.warning('could not write the label cache in %s: %s', os.path.dirname(stem), e)
  return labels


def open_built(builder: base.PatchPairBuilder, split: str
               ) -> Tuple[sources.ArrayRecordPairs, np.ndarray]:
  """(patches source, labels) of a built split; the patches stay on disk."""
  if split not in builder.info.splits:
    if not builder.info.splits:
      raise errors.DataFormatError(
          f'{builder.name}: the build at {builder.data_dir} records no splits (its '
          f'dataset_info.json is missing or damaged); delete {builder.data_dir} and rerun '
          'to rebuild it.')
    raise ValueError(f'{builder.name}: no split {split!r}; splits: {sorted(builder.info.splits)}')
  source = sources.ArrayRecordPairs(builder, split)
  return source, split_labels(builder, split, source)


def open_split(name: str, split: str, *, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, both_classes: bool = True,
               **builder_kwargs) -> Tuple[sources.ArrayRecordPairs, np.ndarray]:
  """Builds `name` if needed; returns (patches source, labels int32 (N,)) of one split.

  The patches are read by rows on demand (sources.PairSource); patches[:, 0] is the
  visible/optical patch, label 1 = matching (docs/data.md). A split with one
  class only raises DataFormatError (`both_classes=False` skips the check).
  """
  builder = prepare(get_builder(name, data_dir=data_dir, manual_dir=manual_dir,
                                **builder_kwargs))
  patches, labels = open_built(builder, split)
  if both_classes:
    check_both_classes(name, split, labels, builder.data_dir)
  return patches, labels


def load_split(name: str, split: str, **kwargs) -> Tuple[np.ndarray, np.ndarray]:
  """`open_split`, with the whole split read into memory (for small data only)."""
  patches, labels = open_split(name, split, **kwargs)
  return np.asarray(patches), labels


def check_both_classes(name: str, split: str, labels: np.ndarray, where: str = '') -> None:
  """Raises DataFormatError when a split holds one class only (no FPR95, no training)."""
  present = np.unique(labels)
  if len(present) < 2:
    only = 'matching (1)' if len(present) and present[0] == 1 else 'non-matching (0)'
    raise errors.DataFormatError(
        f'dataset {name}, split {split}: all {len(labels)} pairs are {only}; training '
        f'and evaluation need both classes (check the labels of its source'
        f'{", built at " + os.fspath(where) if where else ""}).')
