"""Builders 1-3a: the authors' ready-made .npy packs (docs/data.md).

Each split is an image pack (N, 2, 64, 64) uint8 plus a label pack (N,) of 0/1.
Packs are validated in full (shape, dtype, label values, counts) before anything
is written, then copied example by example from a memory map.
"""
import os
from typing import Dict, Tuple

import numpy as np

from rrl_jax.data import base
from rrl_jax.data import errors

_NPY_INSTRUCTIONS = """
Download the authors' ready-made patch packs (links in the README of
github.com/YuChuang1205/RRL-Net, "data" folder) and put these files directly in
the manual directory (the `manual_dir` argument, or <data_dir>/downloads/manual):
{files}
Each image pack is uint8 (N, 2, 64, 64) with the visible/optical patch at index 0;
each label pack is (N,) with 1 = matching, 0 = non-matching.
"""


def validate_pack(image_path: str, label_path: str) -> Tuple[np.ndarray, np.ndarray]:
  """Memory-maps a pack pair and checks it; raises DataFormatError naming the file."""
  try:
    images = np.load(image_path, mmap_mode='r', allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataFormatError(f'{image_path}: not a readable .npy array ({e})') from e
  if images.ndim != 4 or images.shape[1:] != (2, base.PATCH, base.PATCH):
    raise errors.DataFormatError(
        f'{image_path}: expected shape (N, 2, 64, 64), found {images.shape}')
  if len(images) == 0:
    raise errors.DataFormatError(f'{image_path}: the pack holds no pairs (N = 0)')
  if images.dtype != np.uint8:
    raise errors.DataFormatError(f'{image_path}: expected dtype uint8, found {images.dtype}')
  try:
    labels = np.load(label_path, allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataFormatError(f'{label_path}: not a readable .npy array ({e})') from e
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise errors.DataFormatError(f'{label_path}: expected shape (N,), found {labels.shape}')
  if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
          or labels.dtype == np.bool_):
    raise errors.DataFormatError(f'{label_path}: expected numeric labels, found {labels.dtype}')
  bad = ~np.isin(labels, (0, 1))
  if bad.any():
    found = np.unique(labels[bad])[:10]
    raise errors.DataFormatError(
        f'{label_path}: labels must be 0 or 1; found {int(bad.sum())} other value(s), '
        f'e.g. {found.tolist()}')
  if len(labels) != len(images):
    raise errors.DataFormatError(
        f'count mismatch: {image_path} holds {len(images)} pairs but '
        f'{label_path} holds {len(labels)} labels')
  return images, labels.astype(np.int32)


class NpyPackBuilder(base.PatchPairBuilder, skip_registration=True):
  """Base: SPLIT_FILES maps split name -> (image file, label file)."""
  SPLIT_FILES: Dict[str, Tuple[str, str]] = {}
  OPTIONS = {'splits': ()}  # () = every split of the format

  @classmethod
  def instructions(cls) -> str:
    files = '\n'.join(f'  {a}  {b}' for a, b in cls.SPLIT_FILES.values())
    return _NPY_INSTRUCTIONS.format(files=files)

  def _split_generators(self, dl_manager):
    wanted = tuple(self.options['splits']) or tuple(self.SPLIT_FILES)
    unknown = [s for s in wanted if s not in self.SPLIT_FILES]
    if unknown:
      raise ValueError(f'{self.name}: unknown split(s) {unknown}; '
                       f'known: {sorted(self.SPLIT_FILES)}')
    root = self.manual_path(dl_manager)
    paths = {s: tuple(os.path.join(root, f) for f in self.SPLIT_FILES[s]) for s in wanted}
    self.require_files(p for pair in paths.values() for p in pair)
    packs = {s: validate_pack(*paths[s]) for s in wanted}  # all checked before writing
    return {s: base.examples_from_arrays(*packs[s]) for s in wanted}

  def _generate_examples(self, *args):  # pragma: no cover - generators come from above
    raise NotImplementedError


_VIS_NIR_CATEGORIES = ('country', 'field', 'forest', 'indoor', 'mountain',
                       'oldbuilding', 'street', 'urban', 'water')


class RrlVisNir(NpyPackBuilder, skip_registration=True):
  """VIS-NIR patch benchmark (Aguilera et al. 2016) from the authors' npy packs."""
  SPLIT_FILES = {c: (f'{c}.npy', f'{c}_label.npy') for c in _VIS_NIR_CATEGORIES}
  SPLIT_FILES['val'] = ('val_data.npy', 'val_label.npy')


class RrlOs(NpyPackBuilder, skip_registration=True):
  """OS (optical/SAR) patch benchmark from the authors' npy packs."""
  SPLIT_FILES = {s: (f'os_{s}_image.npy', f'os_{s}_label.npy') for s in ('train', 'test')}


class RrlSen12(NpyPackBuilder, skip_registration=True):
  """SEN1-2 (SAR/optical) patch benchmark from the authors' npy packs."""
  SPLIT_FILES = {s: (f'sne_{s}_image.npy', f'sne_{s}_label.npy') for s in ('train', 'test')}


for _cls in (RrlVisNir, RrlOs, RrlSen12):
  _cls.MANUAL_DOWNLOAD_INSTRUCTIONS = _cls.instructions()
