"""Shared TFDS builder base: one feature spec, options-as-config, manual files.

Every dataset is a GeneratorBasedBuilder written as array_record (no TensorFlow
needed). Examples are {'patches': uint8 (2, 64, 64), 'label': 0/1}; index 0 of
axis 1 is the visible/optical patch, label 1 = matching (docs/data.md).
Builder options (sizes, seeds, keypoint limits) become a BuilderConfig whose name
encodes every non-default option, so different options never share a directory.
"""
import dataclasses
import inspect
import numbers
import os
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from rrl_jax.data import errors

PATCH = 64
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
  """Yields (key, example) from in-memory or memory-mapped arrays."""
  for i in range(len(labels)):
    yield f'{prefix}{i:08d}', {'patches': np.ascontiguousarray(patches[i]),
                               'label': int(labels[i])}


def crop(image: np.ndarray, x: int, y: int, size: int = PATCH) -> np.ndarray:
  """The size x size window centred on (x=column, y=row): rows y-size/2..y+size/2-1."""
  half = size // 2
  return image[y - half:y - half + size, x - half:x - half + size]


def window_inside(x, y, width: int, height: int, size: int = PATCH):
  """True where the whole size x size window around (x, y) lies inside the image."""
  x, y, half = np.asarray(x), np.asarray(y), size // 2
  return (x >= half) & (y >= half) & (x - half + size <= width) & (
      y - half + size <= height)
