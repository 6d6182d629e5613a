"""Builder 5 (synthetic) and builder 4 (SIFT scene pairs on ../shared/data)."""
import os

import numpy as np
import pytest

from rrl_jax import data
from rrl_jax.data import synthetic
from conftest import SHARED_DATA, require_path


def test_synthetic_deterministic_balanced_and_seed_dependent():
  a, la = synthetic.generate(64, seed=3)
  b, lb = synthetic.generate(64, seed=3)
  c, _ = synthetic.generate(64, seed=4)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(la, lb)
  assert (a != c).any()
  assert a.shape == (64, 2, 64, 64) and a.dtype == np.uint8 and la.sum() == 32
  # Both spectra use the whole intensity range: not blank, not saturated.
  assert 60 < a.mean() < 200 and a.std() > 30
  with pytest.raises(ValueError, match='difficulty'):
    synthetic.generate(4, seed=0, difficulty=1.5)


def test_synthetic_builder_splits(tmp_path):
  kw = dict(data_dir=str(tmp_path), num_train=300, num_val=100, num_test=60, seed=1)
  assert data.list_splits('synthetic', **kw) == ['test', 'train', 'val']
  patches, labels = data.load_split('synthetic', 'val', **kw)
  assert patches.shape == (100, 2, 64, 64) and labels.mean() == 0.5
  train, _ = data.load_split('synthetic', 'train', **kw)
  assert not any((train[:100] == patches).all(axis=(1, 2, 3)))  # splits are different draws


def test_scenes_on_shared_rgbnir(tmp_path):
  root = require_path(os.path.join(SHARED_DATA, 'rgbnir_scenes'))
  kw = dict(data_dir=str(tmp_path), manual_dir=root, categories=('indoor', 'field'),
            max_images=2, max_keypoints=20)
  assert data.list_splits('scenes', **kw) == ['field', 'indoor']
  patches, labels = data.load_split('scenes', 'indoor', **kw)
  assert len(labels) > 40 and labels.mean() == 0.5
  assert labels[0::2].all() and not labels[1::2].any()  # (match, non-match) per keypoint
  np.testing.assert_array_equal(patches[0::2, 0], patches[1::2, 0])  # same visible patch
  builder = data.get_builder('scenes', **kw)
  counts = builder.info.metadata['counts']['indoor']
  assert counts['images'] == 2 and counts['pairs'] == len(labels)
  # Deterministic: a second build in another directory gives identical pairs.
  again, _ = data.load_split('scenes', 'indoor', **dict(kw, data_dir=str(tmp_path / 'b')))
  np.testing.assert_array_equal(patches, again)


def test_scene_keypoints_respect_spacing_and_border():
  from rrl_jax.data import scenes  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  grey = (rng.random((200, 300)) * 255).astype(np.uint8)
  keypoints, _ = scenes.select_keypoints(grey, max_keypoints=50, min_distance=8)
  assert 0 < len(keypoints) <= 50
  x, y = keypoints.T
  assert (x >= 32).all() and (y >= 32).all() and (x <= 300 - 32).all() and (y <= 200 - 32).all()
  d = np.sqrt(((keypoints[:, None] - keypoints[None]) ** 2).sum(-1)) + np.eye(len(x)) * 99
  assert d.min() >= 8


def test_roadscene_seeded_train_test_split(tmp_path):
  root = require_path(os.path.join(SHARED_DATA, 'roadscene'))
  kw = dict(data_dir=str(tmp_path), manual_dir=root, max_images=2, max_keypoints=15)
  assert data.list_splits('roadscene', **kw) == ['test', 'train']
  patches, labels = data.load_split('roadscene', 'test', **kw)
  assert len(labels) > 10 and labels.mean() == 0.5


def test_scenes_missing_nir_is_named(tmp_path):
  (tmp_path / 'cat').mkdir()
  (tmp_path / 'cat' / '0000_rgb.jpg').write_bytes(b'x')
  with pytest.raises(data.ManualFilesMissingError, match='0000_nir.jpg'):
    data.load_split('scenes', 'cat', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))


def test_scene_split_without_pairs_names_folder_and_rule(tmp_path):
  import cv2  # pylint: disable=import-outside-toplevel
  (tmp_path / 'cat').mkdir()
  grey = (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8)
  cv2.imwrite(str(tmp_path / 'cat' / '0000_rgb.jpg'), grey)
  cv2.imwrite(str(tmp_path / 'cat' / '0000_nir.jpg'), grey)
  with pytest.raises(data.DataFormatError) as err:  # no keypoint pair 5000 px apart
    data.load_split('scenes', 'cat', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path),
                    negative_distance=5000)
  message = str(err.value)
  assert message.startswith(f"{tmp_path}/cat: split 'cat' gave no pairs")
  assert 'border rule' in message and 'No examples' not in message


def test_synthetic_negative_count_is_refused(tmp_path):
  with pytest.raises(data.OptionError, match=r'rrl_synthetic: bad builder option num_train=-5: '
                     r'must be >= 0'):
    data.load_split('synthetic', 'val', data_dir=str(tmp_path), num_train=-5, num_val=4)
