"""Matcher API: checkpoint loading, uint8/float inputs, resize, keypoint cutting."""
import numpy as np
import pytest

from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.evaluation import matcher
from rrl_jax.checkpoint_format import CheckpointError


@pytest.fixture(scope='session')
def tiny_matcher(tiny_checkpoint):
  return matcher.Matcher.from_checkpoint(tiny_checkpoint[2], batch_size=4)


def test_from_checkpoint_scores_like_evaluation(tiny_checkpoint, tiny_matcher):
  model, variables, _ = tiny_checkpoint
  assert set(tiny_matcher.variables['params']) == {
      'encoder_a', 'encoder_b', 'fil', 'metric', 'stage_head5'}
  pairs = np.random.default_rng(0).integers(0, 256, (6, 2, 64, 64), dtype=np.uint8)
  want = evaluation.score_pairs(model, variables, pairs, batch_size=4)
  np.testing.assert_allclose(tiny_matcher.score(pairs), want, atol=1e-6)
  np.testing.assert_allclose(
      tiny_matcher.score_pairs(pairs[:, 0, ..., None], pairs[:, 1, ..., None]),
      want, atol=1e-6)


def test_resize(tiny_checkpoint):
  _, _, path = tiny_checkpoint
  small = np.random.default_rng(1).integers(0, 256, (3, 2, 32, 32), dtype=np.uint8)
  with pytest.raises(ValueError, match='32x32'):
    matcher.Matcher.from_checkpoint(path, batch_size=4).score(small)
  resizing = matcher.Matcher.from_checkpoint(path, batch_size=4, resize=True)
  assert resizing.prepare(small).shape == (3, 2, 64, 64)
  assert resizing.score(small).shape == (3,)


def test_not_a_checkpoint(tmp_path):
  with pytest.raises(CheckpointError, match='not an rrl_jax checkpoint'):
    matcher.Matcher.from_checkpoint(str(tmp_path))


def test_cut_pairs_at_keypoints():
  image_a = np.arange(100 * 120, dtype=np.int64).reshape(100, 120) % 251
  image_b = image_a.T.copy()
  image_a, image_b = image_a.astype(np.uint8), image_b.astype(np.uint8)
  kp = np.array([[40, 50, 32, 32], [80, 60, 60, 80]])
  pairs = matcher.cut_pairs_at_keypoints(image_a, image_b, kp)
  assert pairs.shape == (2, 2, 64, 64) and pairs.dtype == np.uint8
  np.testing.assert_array_equal(pairs[0, 0], image_a[18:82, 8:72])
  np.testing.assert_array_equal(pairs[1, 1], image_b[48:112, 28:92])
  with pytest.raises(ValueError, match=r'row\(s\) \[2\]'):
    matcher.cut_pairs_at_keypoints(image_a, image_b, np.array([[40, 50, 32, 32],
                                                               [10, 50, 32, 32]]))
  with pytest.raises(ValueError, match=r'row\(s\) \[2\] are not finite'):
    matcher.cut_pairs_at_keypoints(image_a, image_b, np.array([[40, 50, 32, 32],
                                                               [np.nan, 50, 32, 32]]))


def test_read_keypoints(tmp_path):
  path = tmp_path / 'kp.csv'
  path.write_text('xa,ya,xb,yb\n40,50,32,32\n80.2,60,60,80\n')
  np.testing.assert_array_equal(matcher.read_keypoints(str(path)),
                                [[40, 50, 32, 32], [80, 60, 60, 80]])
  path.write_text('xa,ya,xb,yb\n40,50,32\n')
  with pytest.raises(ValueError, match='kp.csv:2: expected 4 values'):
    matcher.read_keypoints(str(path))
