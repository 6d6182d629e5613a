"""Builders 2b/3b: raw OSdataset / SEN1-2 images plus official pair lists.

Border rule (both builders): a pair is REJECTED (left out) when either 64x64
window [x-32, x+32) x [y-32, y+32) does not lie entirely inside its image; the
number rejected per split is logged and stored in the dataset metadata
('counts'). The official OS lists keep every keypoint in [32, 480] on 512x512
images, so none of their pairs is rejected.
"""
import codecs
import logging
import os
from typing import Dict, List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

from rrl_jax.data import base
from rrl_jax.data import errors

BORDER_RULE = ('reject: a pair whose optical or SAR 64x64 window leaves the image '
               'is left out; counts per split in metadata["counts"]')


class Pair(NamedTuple):
  optical: str  # image path
  optical_xy: Tuple[int, int]
  other: str
  other_xy: Tuple[int, int]
  label: int


def _int(field: str) -> int:
  value = float(field)
  if value != int(value):
    raise ValueError(f'{field!r} is not an integer')
  return int(value)


def _is_number(field: str) -> bool:
  try:
    float(field)
    return True
  except ValueError:
    return False


def _lines(path: str):
  """(1-based number, text) of each line; a UTF-8 BOM is dropped, other bytes named."""
  with open(path, 'rb') as f:
    raw = f.read()
  if raw.startswith(codecs.BOM_UTF8):
    raw = raw[len(codecs.BOM_UTF8):]
  for number, line in enumerate(raw.splitlines(), start=1):
    try:
      yield number, line.decode('utf-8')
    except UnicodeDecodeError as e:
      raise errors.DataFormatError(
          f'{path}:{number}: not UTF-8 text (byte {line[e.start]:#04x} at column '
          f'{e.start + 1}); save the pair list as UTF-8') from None


def outside(root: str, path: str) -> bool:
  """Whether `path` leaves the folder `root` (lexically: `../`, absolute paths).

  Symbolic links inside `root` are followed as the user made them.
  """
  root = os.path.normpath(os.path.abspath(root))
  path = os.path.normpath(os.path.join(root, path))
  return os.path.commonpath([root, path]) != root


def parse_pair_list(path: str, n_fields: int, to_pair, root: str = '') -> List[Pair]:
  """Parses a comma-separated pair list; malformed lines raise PairListError.

  A first line without any number (a header such as `folder,number,...`) is
  skipped. With `root` (the manual directory), an image path that leaves it
  (`../`, an absolute path) is refused naming the line.
  """
  pairs = []
  first = True
  for number, line in _lines(path):
    if not line.strip():
      continue
    fields = [s.strip() for s in line.split(',')]
    header, first = first, False
    if len(fields) != n_fields:
      raise errors.PairListError(path, number, line,
                                 f'expected {n_fields} comma-separated fields, found {len(fields)}')
    try:
      pair = to_pair(fields)
    except ValueError as e:
      if header and not any(_is_number(x) for x in fields):
        logging.info('%s:%d: skipping header line %r', path, number, line)
        continue
      raise errors.PairListError(path, number, line, str(e)) from e
    if pair.label not in (0, 1):
      raise errors.PairListError(path, number, line, f'label must be 0 or 1, found {pair.label}')
    escaping = [p for p in (pair.optical, pair.other) if root and outside(root, p)]
    if escaping:
      raise errors.PairListError(
          path, number, line, f'image {escaping[0]} is outside the manual directory '
          f'{root} (a "../" or absolute path); pair-list paths must stay inside it')
    pairs.append(pair)
  if not pairs:
    raise errors.DataFormatError(f'{path}: the pair list holds no pairs')
  return pairs


def read_grey(path: str) -> np.ndarray:
  image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if image is None:
    raise errors.DataFormatError(f'{path}: cannot be decoded as an image')
  if image.ndim == 3:
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    image = cv2.cvtColor(image, code)
  if image.dtype != np.uint8:
    raise errors.DataFormatError(f'{path}: expected 8-bit pixels, found {image.dtype}')
  return image


def cut_pairs(pairs: Sequence[Pair], split: str, builder: base.PatchPairBuilder,
              source: str = ''):
  """Yields examples; applies the border rule and records the count.

  Raises DataFormatError naming `source` (the pair list) when the rule leaves none.
  """
  cache: Dict[str, np.ndarray] = {}
  def image(path):
    if path not in cache:
      if len(cache) > 64:
        cache.clear()
      cache[path] = read_grey(path)
    return cache[path]
  rejected = kept = 0
  for i, p in enumerate(pairs):
    a, b = image(p.optical), image(p.other)
    if not (base.window_inside(*p.optical_xy, a.shape[1], a.shape[0])
            and base.window_inside(*p.other_xy, b.shape[1], b.shape[0])):
      rejected += 1
      continue
    kept += 1
    patches = np.stack([base.crop(a, *p.optical_xy), base.crop(b, *p.other_xy)])
    yield f'{i:08d}', {'patches': patches, 'label': p.label}
  logging.info('%s/%s: %d pairs kept, %d rejected by the border rule', builder.name,
               split, kept, rejected)
  if not kept:
    raise errors.DataFormatError(
        f'{source or split}: all {rejected} pairs were rejected by the border rule (a '
        'pair whose optical or other 64x64 window leaves its image is left out); '
        'check the keypoints and the image sizes')
  builder.record_border_count(split, kept=kept, border_rejected=rejected)


class _PairListBuilder(base.PatchPairBuilder, skip_registration=True):
  """Base: pair lists `<split>.txt` in `pair_list_dir` (default: the manual dir)."""
  BORDER_RULE = BORDER_RULE
  N_FIELDS = 0
  OPTIONS = {'splits': ('train', 'test')}

  def __init__(self, *, pair_list_dir=None, **kwargs):
    self._pair_list_dir = pair_list_dir
    super().__init__(**kwargs)

  def _line_to_pair(self, root: str, fields: List[str]) -> Pair:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    root = self.manual_path(dl_manager)
    list_dir = os.path.abspath(self._pair_list_dir or root)
    lists = {s: os.path.join(list_dir, f'{s}.txt') for s in self.options['splits']}
    self.require_files(list(lists.values()))
    pairs = {s: parse_pair_list(p, self.N_FIELDS, lambda f: self._line_to_pair(root, f),
                                root=root)
             for s, p in lists.items()}
    self.require_files(q for ps in pairs.values() for p in ps for q in (p.optical, p.other))
    return {s: cut_pairs(ps, s, self, lists[s]) for s, ps in pairs.items()}

  def _generate_examples(self, *args):  # pragma: no cover
    raise NotImplementedError


class RrlOsRaw(_PairListBuilder, skip_registration=True):
  """OS patches cut from raw OSdataset images around the official keypoints."""
  N_FIELDS = 7
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
Download OSdataset (Xiang et al., IEEE JSTARS 2020; the link is in the README of
github.com/YuChuang1205/RRL-Net), 512x512 version, and place it so that these
exist in the manual directory:
  OSdataset/512/{train,val,test}/opt<n>.png and sar<n>.png
The pair lists train.txt and test.txt (lines `folder, number, opt_x, opt_y,
sar_x, sar_y, label`; a copy is in ../shared/data/pair_lists/os_patch) go in the
manual directory or in the folder passed as pair_list_dir.
"""

  def _line_to_pair(self, root, f):
    folder = os.path.join(root, 'OSdataset', '512', f[0])
    return Pair(os.path.join(folder, f'opt{_int(f[1])}.png'), (_int(f[2]), _int(f[3])),
                os.path.join(folder, f'sar{_int(f[1])}.png'), (_int(f[4]), _int(f[5])),
                _int(f[6]))


def _png(name: str) -> str:
  return name if os.path.splitext(name)[1] else name + '.png'


class RrlSen12Raw(_PairListBuilder, skip_registration=True):
  """SEN1-2 patches cut from raw Sentinel-1/2 PNGs; optical (s2) goes to index 0."""
  N_FIELDS = 10
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
Download SEN1-2 (Schmitt et al. 2018, mediatum.ub.tum.de/1436631) and unpack it
in the manual directory in its own layout:
  <ROI_folder>/<s1_subfolder>/<s1_image>.png and <ROI_folder>/<s2_subfolder>/<s2_image>.png
e.g. ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p30.png. Put the pair lists
train.txt and test.txt (lines `ROI_folder, s1_subfolder, s1_image, s1_x, s1_y,
s2_subfolder, s2_image, s2_x, s2_y, label`, SAR first) in the manual directory
or in the folder passed as pair_list_dir.
"""

  def _line_to_pair(self, root, f):
    s1 = os.path.join(root, f[0], f[1], _png(f[2]))
    s2 = os.path.join(root, f[0], f[5], _png(f[6]))
    return Pair(s2, (_int(f[7]), _int(f[8])), s1, (_int(f[3]), _int(f[4])), _int(f[9]))
