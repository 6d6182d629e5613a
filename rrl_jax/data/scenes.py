"""Builder 4: patch pairs cut at SIFT keypoints of aligned real scene pairs.

Recipe (README, "Datasets"; ../shared/data/README.md):
- SIFT (OpenCV) on the grey visible image; keypoints by decreasing response,
  rounded to whole pixels, kept greedily when >= `min_distance` px from every kept
  one, up to `max_keypoints` per image.
- Border rule: a keypoint whose 64x64 window [x-32, x+32) x [y-32, y+32) leaves
  the image is rejected before selection; counts in metadata['counts'].
- Matching pair: visible and other-spectrum patch at the same keypoint.
  Non-matching: the visible patch at that keypoint with the other spectrum's patch
  at a random different kept keypoint >= `negative_distance` px away, same scene.
  Each kept keypoint gives one of each (balanced); a keypoint with no far-enough
  partner is dropped entirely. Random choices are seeded by (seed, file name).
"""
import glob
import logging
import os
import zlib
from typing import Dict, List, Tuple

import cv2
import numpy as np

from rrl_jax.data import base
from rrl_jax.data import errors
from rrl_jax.data.pair_lists import read_grey

BORDER_RULE = 'reject keypoints whose 64x64 window leaves the image'


def select_keypoints(grey: np.ndarray, max_keypoints: int, min_distance: float) -> Tuple[np.ndarray, int]:
  """(K, 2) int (x, y) keypoints, and how many SIFT detections the border rule rejected."""
  detections = cv2.SIFT_create().detect(grey, None)
  detections = sorted(detections, key=lambda k: -k.response)
  xy = np.array([k.pt for k in detections], dtype=np.float64).reshape(-1, 2)
  xy = np.rint(xy).astype(np.int64)
  inside = base.window_inside(xy[:, 0], xy[:, 1], grey.shape[1], grey.shape[0])
  rejected = int((~inside).sum())
  kept: List[np.ndarray] = []
  min_sq = min_distance ** 2
  for point in xy[inside]:
    if len(kept) >= max_keypoints:
      break
    if kept and (((np.asarray(kept) - point) ** 2).sum(1) < min_sq).any():
      continue
    kept.append(point)
  return np.asarray(kept, dtype=np.int64).reshape(-1, 2), rejected


def scene_pairs(visible: np.ndarray, other: np.ndarray, keypoints: np.ndarray,
                negative_distance: float, rng: np.random.Generator):
  """Yields (patches, label) pairs: one matching + one non-matching per usable keypoint."""
  dist_sq = ((keypoints[:, None, :] - keypoints[None, :, :]) ** 2).sum(-1)
  far = dist_sq >= negative_distance ** 2
  for i, (x, y) in enumerate(keypoints):
    partners = np.flatnonzero(far[i])
    if len(partners) == 0:
      continue
    j = partners[rng.integers(len(partners))]
    vis = base.crop(visible, x, y)
    yield np.stack([vis, base.crop(other, x, y)]), 1
    yield np.stack([vis, base.crop(other, *keypoints[j])]), 0


class _SceneBuilder(base.PatchPairBuilder, skip_registration=True):
  """Base: subclasses list {split: [(visible path, other path), ...]}."""
  BORDER_RULE = BORDER_RULE
  OPTIONS = {'max_keypoints': 300, 'min_distance': 8, 'negative_distance': 32, 'seed': 0,
             'max_images': 0}  # max_images 0 = all images of a split
  INTEGER_OPTIONS = ('max_keypoints', 'seed', 'max_images')

  @classmethod
  def option_problems(cls, options):
    if options['max_keypoints'] < 1:
      yield f'max_keypoints={options["max_keypoints"]}: must be >= 1'
    for key in ('min_distance', 'negative_distance', 'max_images'):
      if options[key] < 0:
        yield f'{key}={options[key]}: must be >= 0'
    if 'test_fraction' in options and not 0.0 <= options['test_fraction'] < 1.0:
      yield f'test_fraction={options["test_fraction"]}: must lie in [0, 1)'

  def scene_files(self, root: str) -> Dict[str, List[Tuple[str, str]]]:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    root = self.manual_path(dl_manager)
    self.require_files([root])
    splits = self.scene_files(root)
    self.require_files(p for pairs in splits.values() for pair in pairs for p in pair)
    if self.options['max_images']:
      splits = {s: pairs[:self.options['max_images']] for s, pairs in splits.items()}
    return {s: self._cut(s, pairs) for s, pairs in splits.items()}

  def _cut(self, split, files):
    o = self.options
    counts = {'images': 0, 'keypoints': 0, 'border_rejected': 0, 'no_partner': 0, 'pairs': 0}
    for vis_path, other_path in files:
      visible, other = read_grey(vis_path), read_grey(other_path)
      if visible.shape != other.shape:
        raise errors.DataFormatError(
            f'{other_path}: size {other.shape} differs from {vis_path} {visible.shape}; '
            'scene pairs must be pixel-aligned')
      keypoints, rejected = select_keypoints(visible, o['max_keypoints'], o['min_distance'])
      name = os.path.basename(vis_path)
      rng = np.random.default_rng([o['seed'], zlib.crc32(name.encode())])
      n = 0
      for n, (patches, label) in enumerate(
          scene_pairs(visible, other, keypoints, o['negative_distance'], rng), start=1):
        yield f'{name}-{n:05d}', {'patches': patches, 'label': label}
      counts['images'] += 1
      counts['keypoints'] += len(keypoints)
      counts['border_rejected'] += rejected
      counts['no_partner'] += len(keypoints) - n // 2
      counts['pairs'] += n
    logging.info('%s/%s: %s', self.name, split, counts)
    if not counts['pairs']:
      folder = os.path.dirname(files[0][0]) if files else split
      raise errors.DataFormatError(
          f'{folder}: split {split!r} gave no pairs ({counts}); the border rule ({BORDER_RULE}) '
          'and the negative_distance/max_keypoints options left no usable keypoint')
    self.record_border_count(split, **counts)

  def _generate_examples(self, *args):  # pragma: no cover
    raise NotImplementedError


class RrlScenes(_SceneBuilder, skip_registration=True):
  """Scene patches from the EPFL RGB-NIR layout; one split per category folder."""
  OPTIONS = dict(_SceneBuilder.OPTIONS, categories=())  # () = every category folder
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
Point manual_dir at a folder in the EPFL RGB-NIR Scene layout (Brown & Susstrunk,
CVPR 2011, ivrlwww.epfl.ch/supplementary_material/cvpr11/): one sub-folder per
category holding NNNN_rgb.jpg (visible) and NNNN_nir.jpg (near-infrared),
pixel-aligned. configs/scenes.py reads $RRL_JAX_DATA_DIR/rgbnir_scenes (unset:
../shared/data/rgbnir_scenes beside a source checkout, a subset); or pass
--config.dataset.manual_dir=DIR.
"""

  def scene_files(self, root):
    wanted = self.options['categories']
    categories = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if wanted:
      self.require_files(os.path.join(root, c) for c in wanted)
      categories = [c for c in categories if c in wanted]
    splits = {}
    for c in categories:
      rgb = sorted(glob.glob(os.path.join(root, c, '*_rgb.jpg')))
      if rgb:
        splits[c] = [(p, p[:-len('_rgb.jpg')] + '_nir.jpg') for p in rgb]
    if not splits:
      self.require_files([os.path.join(root, '<category>', 'NNNN_rgb.jpg')])
    return splits


class RrlRoadscene(_SceneBuilder, skip_registration=True):
  """Visible/LWIR scene patches from the RoadScene vis/ + lwir/ layout.

  RoadScene has no categories: its images are split by a seeded permutation of
  the sorted file names into 'train' and 'test' (`test_fraction` of the images,
  rounded), so no scene contributes patches to both splits.
  """
  OPTIONS = dict(_SceneBuilder.OPTIONS, test_fraction=0.2)
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
Point manual_dir at a RoadScene folder (github.com/hanna-xu/RoadScene) holding
vis/<name>.jpg (visible, colour) and lwir/<name>.jpg (thermal), same names,
pixel-aligned. configs/roadscene.py reads $RRL_JAX_DATA_DIR/roadscene (unset:
../shared/data/roadscene beside a source checkout, 150 pairs); or pass
--config.dataset.manual_dir=DIR.
"""

  def scene_files(self, root):
    self.require_files([os.path.join(root, 'vis'), os.path.join(root, 'lwir')])
    names = sorted(os.listdir(os.path.join(root, 'vis')))
    if not names:
      self.require_files([os.path.join(root, 'vis', '<name>.jpg')])
    order = np.random.default_rng(self.options['seed']).permutation(len(names))
    n_test = int(round(self.options['test_fraction'] * len(names)))
    pick = lambda idx: [(os.path.join(root, 'vis', names[i]), os.path.join(root, 'lwir', names[i]))
                        for i in sorted(idx)]
    return {'train': pick(order[n_test:]), 'test': pick(order[:n_test])}
