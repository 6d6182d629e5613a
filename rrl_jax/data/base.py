"""Shared TFDS builder base: one feature spec, options-as-config, manual files.

Every dataset is a GeneratorBasedBuilder written as array_record (no TensorFlow
needed). Splits are written as they are generated, in generation order, shard by
shard (`_generate_splits`): TFDS's own writer buffers a whole split in memory and
spills splits above 1 GB through TensorFlow; our sampler shuffles at read time.
Examples are {'patches': uint8 (2, 64, 64), 'label': 0/1}; index 0 of axis 1 is the
visible/optical patch, label 1 = matching (docs/data.md).
Builder options (sizes, seeds, keypoint limits) become a BuilderConfig whose name
encodes every non-default option, so different options never share a directory.
"""
import dataclasses
import inspect
import json
import mmap
import numbers
import os
import re
import shutil
import socket
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from rrl_jax.data import errors

PATCH = 64
_RELEASE_EVERY = 8192  # pairs between releases of a memory-mapped pack's pages
SHARD_BYTES = 256 << 20  # Shard size of the streaming writer (random access: any size works).
HALF = PATCH // 2


@dataclasses.dataclass(eq=False)
class OptionsConfig(tfds.core.BuilderConfig):
  """A BuilderConfig carrying a builder's options as a dict."""
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _config_name(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
  changed = {k: v for k, v in sorted(options.items()) if defaults[k] != v}
  if not changed:
    return 'default'
  def fmt(v):
    if isinstance(v, (list, tuple)):
      return '+'.join(str(x) for x in v)
    return str(v)
  name = '_'.join(f'{k}-{fmt(v)}' for k, v in changed.items())
  return re.sub(r'[^\w\-.+]', '', name)


class PatchPairBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base for all rrl_jax patch-pair datasets.

  Subclasses set OPTIONS (defaults of their options), MANUAL_DOWNLOAD_INSTRUCTIONS
  (if they read manual files) and implement `_split_generators`.
  """
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  OPTIONS: Dict[str, Any] = {}
  INTEGER_OPTIONS: Tuple[str, ...] = ()
  MANUAL_DOWNLOAD_INSTRUCTIONS: Optional[str] = None

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup needs the importlib_resources backport; a plain file path
    # is all it uses the result for (checksums.tsv beside the code: none here).
    return epath.Path(inspect.getfile(cls))

  def __init__(self, *, manual_dir: Optional[str] = None, config=None, **kwargs):
    option_names = set(self.OPTIONS)
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in option_names}
    if config is None:
      full = dict(self.OPTIONS)
      full.update({k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
      config = OptionsConfig(name=_config_name(full, self.OPTIONS), options=full,
                             description=f'options: {full}')
    elif options:
      raise TypeError('pass either config or option keywords, not both')
    self._check_options(config.options)
    self._manual_dir_override = manual_dir
    self.border_counts: Dict[str, Dict[str, int]] = {}
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(config=config, **kwargs)

  @classmethod
  def option_problems(cls, options: Mapping[str, Any]) -> Iterable[str]:
    """Subclasses: yield 'name=value: what is wrong' for impossible values."""
    return ()

  def _check_options(self, options: Mapping[str, Any]) -> None:
    """Raises OptionError naming the option, before anything is read or built."""
    problems = []
    for key, default in self.OPTIONS.items():
      value = options.get(key, default)
      number = isinstance(value, numbers.Real) and not isinstance(value, bool)
      integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
      if key in self.INTEGER_OPTIONS and not integer:
        problems.append(f'{key}={value!r}: expected an integer')
      elif isinstance(default, (int, float)) and not isinstance(default, bool) and not number:
        problems.append(f'{key}={value!r}: expected a number')
      elif isinstance(default, tuple) and not isinstance(value, tuple):
        problems.append(f'{key}={value!r}: expected a tuple like the default {default!r}')
    if not problems:
      problems = list(self.option_problems(options))
    if problems:
      raise errors.OptionError(f'{self.name}: bad builder option {problems[0]}')

  @property
  def options(self) -> Mapping[str, Any]:
    return self.builder_config.options

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or '').strip(),
        features=tfds.features.FeaturesDict({
            # One bytes blob per example: ~15x faster to write than int64 lists.
            'patches': tfds.features.Tensor(
                shape=(2, PATCH, PATCH), dtype=np.uint8, encoding='bytes'),
            'label': tfds.features.ClassLabel(names=['non_matching', 'matching']),
        }),
        supervised_keys=('patches', 'label'),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  # --- writing -----------------------------------------------------------
  def _generate_splits(self, dl_manager, download_config):
    """Writes each split in generation order, shard by shard (memory flat in size)."""
    del download_config
    write_owner(self._get_filename_template(split_name='owner').data_dir)
    generators = self._split_generators(dl_manager)
    return [write_split(self, name, examples) for name, examples in generators.items()]

  # --- manual files -------------------------------------------------------
  def manual_path(self, dl_manager=None) -> str:
    """The manual directory: the `manual_dir` argument or TFDS's default."""
    if self._manual_dir_override is not None:
      return os.path.abspath(os.path.expanduser(self._manual_dir_override))
    if dl_manager is not None and getattr(dl_manager, '_manual_dir', None):
      return os.fspath(dl_manager._manual_dir)  # pylint: disable=protected-access
    return os.path.join(os.fspath(self._data_dir_root), 'downloads', 'manual')

  def require_files(self, paths: Iterable[str]) -> None:
    """Raises one ManualFilesMissingError naming every missing path."""
    missing = sorted({p for p in paths if not os.path.exists(p)})
    if missing:
      raise errors.ManualFilesMissingError(
          self.name, missing, self.MANUAL_DOWNLOAD_INSTRUCTIONS or '')

  def record_border_count(self, split: str, **counts: int) -> None:
    """Keeps per-split counts (e.g. rejected windows) in the dataset metadata."""
    self.border_counts[split] = dict(counts)
    self.info.metadata['border_rule'] = getattr(self, 'BORDER_RULE', '')
    self.info.metadata['counts'] = dict(self.border_counts)


def examples_from_arrays(patches: np.ndarray, labels: np.ndarray, prefix: str = ''):
  """Yields (key, example) from in-memory or memory-mapped arrays.

  A memory map's pages are released as they are passed (the file stays the
  source), so copying a pack of any size keeps memory flat.
  """
  pages = getattr(patches, '_mmap', None)
  for i in range(len(labels)):
    yield f'{prefix}{i:08d}', {'patches': np.ascontiguousarray(patches[i]),
                               'label': int(labels[i])}
    if pages is not None and i % _RELEASE_EVERY == _RELEASE_EVERY - 1:
      pages.madvise(mmap.MADV_DONTNEED)


def crop(image: np.ndarray, x: int, y: int, size: int = PATCH) -> np.ndarray:
  """The size x size window centred on (x=column, y=row): rows y-size/2..y+size/2-1."""
  half = size // 2
  return image[y - half:y - half + size, x - half:x - half + size]


def window_inside(x, y, width: int, height: int, size: int = PATCH):
  """True where the whole size x size window around (x, y) lies inside the image."""
  x, y, half = np.asarray(x), np.asarray(y), size // 2
  return (x >= half) & (y >= half) & (x - half + size <= width) & (
      y - half + size <= height)


def write_split(builder: 'PatchPairBuilder', split: str, examples) -> tfds.core.SplitInfo:
  """Streams (key, example) into array_record shards of ~SHARD_BYTES; returns its SplitInfo.

  Shards are written under temporary names and renamed once their count is known
  (inside TFDS's `incomplete.*` directory, itself renamed only when all splits are done).
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import example_serializer  # pylint: disable=g-import-not-at-top
  features = builder.info.features
  serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
  template = builder._get_filename_template(split_name=split)  # pylint: disable=protected-access
  tmp_paths, lengths, shard_bytes, total = [], [], 0, 0
  writer = None
  try:
    for _, example in examples:
      record = serializer.serialize_example(features.encode_example(example))
      if writer is None:
        tmp_paths.append(os.fspath(template.data_dir / f'{split}.shard{len(tmp_paths)}.tmp'))
        writer = array_record_module.ArrayRecordWriter(tmp_paths[-1], 'group_size:1')
        lengths.append(0)
        shard_bytes = 0
      writer.write(record)
      lengths[-1] += 1
      shard_bytes += len(record)
      total += len(record)
      if shard_bytes >= SHARD_BYTES:
        writer.close()
        writer = None
    if writer is not None:
      writer.close()
  except errors.DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    message = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise errors.DataError(
        f'{builder.name}, split {split}: building failed after {sum(lengths)} pairs '
        f'({total / 1e6:.0f} MB written) with {type(e).__name__}: {message}; check the '
        f'input files and the free space under {builder.data_dir}, then rerun (nothing '
        'partial is kept).') from None
  if not lengths:
    raise errors.DataFormatError(f'{builder.name}, split {split}: no pairs to write')
  for i, tmp in enumerate(tmp_paths):
    os.replace(tmp, os.fspath(template.sharded_filepath(shard_index=i,
                                                         num_shards=len(tmp_paths))))
  return tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=total,
                             filename_template=template)


OWNER_FILE = 'rrl_build_owner.json'


def write_owner(build_dir) -> None:
  """Marks a TFDS `incomplete.*` directory with its host and process (see clean_abandoned)."""
  os.makedirs(os.fspath(build_dir), exist_ok=True)
  with open(os.path.join(os.fspath(build_dir), OWNER_FILE), 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': os.getpid()}, f)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def clean_abandoned(config_dir: str, unmarked_age_s: float = 600.0) -> List[str]:
  """Deletes `incomplete.*` build directories left by killed builds; returns them.

  A directory is abandoned when its owner process (same host) is gone, or when it
  carries no owner mark and has not changed for `unmarked_age_s` seconds.
  """
  removed = []
  if not os.path.isdir(config_dir):
    return removed
  for name in os.listdir(config_dir):
    path = os.path.join(config_dir, name)
    if not name.startswith('incomplete.') or not os.path.isdir(path):
      continue
    try:
      with open(os.path.join(path, OWNER_FILE)) as f:
        owner = json.load(f)
      abandoned = owner.get('host') == socket.gethostname() and not _alive(int(owner['pid']))
    except (OSError, ValueError, KeyError, TypeError):
      abandoned = time.time() - os.path.getmtime(path) > unmarked_age_s
    if abandoned:
      shutil.rmtree(path, ignore_errors=True)
      removed.append(path)
  return removed
