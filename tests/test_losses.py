"""The multi-loss objective (rrl_jax.training.losses): BCE, reconstruction, terms, weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax.training import losses
from rrl_jax.training import vgg19


def keras22_bce(probs, labels):
  """Keras 2.2 backend.binary_crossentropy on probabilities, in float64."""
  eps = 1e-7
  p = np.clip(np.asarray(probs, np.float64), eps, 1 - eps)
  z = np.log(p / (1 - p))
  per = np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
  return per.mean()


def test_bce_matches_keras():
  logits = np.array([-3.0, -0.2, 0.0, 0.7, 5.0], np.float32)
  labels = np.array([0, 1, 1, 0, 1], np.float32)
  got = float(losses.bce_with_logits(jnp.asarray(logits), jnp.asarray(labels)))
  np.testing.assert_allclose(got, keras22_bce(1 / (1 + np.exp(-logits.astype(np.float64))),
                                              labels), rtol=1e-6)


def test_bce_clips_like_keras():
  logits = jnp.array([100.0, -100.0, 100.0, -100.0])
  labels = jnp.array([0.0, 1.0, 1.0, 0.0])
  got = float(losses.bce_with_logits(logits, labels))
  want = keras22_bce([1.0, 0.0, 1.0, 0.0], np.array([0, 1, 1, 0]))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(got, (2 * -np.log(1e-7) + 2 * -np.log(1 - 1e-7)) / 4,
                             rtol=1e-5)
  # Beyond the clip the gradient is zero, as with Keras's clip.
  grad = jax.grad(lambda z: losses.bce_with_logits(z, labels))(logits)
  np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_bce_accepts_column_labels():
  z = jnp.array([0.3, -0.4])
  a = losses.bce_with_logits(z, jnp.array([1.0, 0.0]))
  b = losses.bce_with_logits(z, jnp.array([[1.0], [0.0]]))
  assert float(a) == float(b)


def _outputs(batch=4, names=losses.LOSS_NAMES, seed=0):
  rng = np.random.default_rng(seed)
  out = {}
  for name in names:
    if name.startswith('recon'):
      out[name] = jnp.asarray(rng.uniform(size=(batch, 64, 64, 1)), jnp.float32)
    else:
      out[name] = jnp.asarray(rng.normal(size=(batch,)), jnp.float32)
  return out


def test_loss_terms_and_weights():
  out = _outputs()
  rng = np.random.default_rng(1)
  xa = jnp.asarray(rng.uniform(size=(4, 64, 64, 1)), jnp.float32)
  xb = jnp.asarray(rng.uniform(size=(4, 64, 64, 1)), jnp.float32)
  y = jnp.array([0.0, 1.0, 1.0, 0.0])
  recon = losses.make_recon_loss('mse')
  terms = losses.loss_terms(out, y, xa, xb, recon)
  assert tuple(terms) == losses.LOSS_NAMES
  for name in losses.HEAD_NAMES:
    assert float(terms[name]) == float(losses.bce_with_logits(out[name], y))
  # Reconstruction targets are each branch's own input.
  np.testing.assert_allclose(float(terms['recon_a']),
                             0.1 * np.mean((np.asarray(out['recon_a']) - np.asarray(xa)) ** 2),
                             rtol=1e-5)
  np.testing.assert_allclose(float(terms['recon_b']),
                             0.1 * np.mean((np.asarray(out['recon_b']) - np.asarray(xb)) ** 2),
                             rtol=1e-5)
  ones = float(losses.weighted_total(terms, {}))
  np.testing.assert_allclose(ones, sum(float(v) for v in terms.values()), rtol=1e-6)
  weights = {n: float(i) for i, n in enumerate(losses.LOSS_NAMES)}
  np.testing.assert_allclose(float(losses.weighted_total(terms, weights)),
                             sum(weights[n] * float(terms[n]) for n in terms), rtol=1e-6)
  traced = jax.jit(losses.weighted_total)(
      terms, {n: jnp.float32(w) for n, w in weights.items()})
  np.testing.assert_allclose(float(traced), float(losses.weighted_total(terms, weights)),
                             rtol=1e-6)
  with pytest.raises(ValueError, match='stage6'):
    losses.weighted_total(terms, {'stage6': 1.0})


def test_loss_terms_only_for_present_heads():
  names = ('stage5', 'module4', 'recon_b')
  out = _outputs(names=names)
  x = jnp.zeros((4, 64, 64, 1))
  terms = losses.loss_terms(out, jnp.ones(4), x, x, losses.make_recon_loss('mse'))
  assert set(terms) == set(names)


def test_recon_loss_errors():
  with pytest.raises(ValueError, match='ssim'):
    losses.make_recon_loss('ssim')
  with pytest.raises(ValueError, match='VGG19'):
    losses.make_recon_loss('perceptual')


def test_perceptual_loss(tmp_path):
  params = vgg19.write_random_vgg19_npz(str(tmp_path / 'vgg.npz'))
  fn = losses.make_recon_loss('perceptual', params)
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.uniform(size=(2, 64, 64, 1)), jnp.float32)
  recon = jnp.asarray(rng.uniform(size=(2, 64, 64, 1)), jnp.float32)
  got = float(fn(recon, target))
  f = lambda x: vgg19.vgg19_block5_conv4(params, jnp.repeat(x, 3, axis=-1))
  feat = float(jnp.mean((f(recon) - f(target)) ** 2))
  assert feat > 0
  pixel = 0.1 * float(jnp.mean((recon - target) ** 2))
  np.testing.assert_allclose(got, pixel + feat, rtol=1e-5)
  assert float(fn(target, target)) == 0.0
  # VGG19 is frozen; the reconstruction gets gradients from both parts.
  g_vgg = jax.grad(lambda p: losses.make_recon_loss('perceptual', p)(recon, target))(params)
  assert all(float(jnp.max(jnp.abs(l))) == 0.0 for l in jax.tree_util.tree_leaves(g_vgg))
  g_recon = jax.grad(fn)(recon, target)
  g_pixel = jax.grad(losses.make_recon_loss('mse'))(recon, target)
  assert float(jnp.max(jnp.abs(g_recon - g_pixel))) > 0


# ---------------------------------------------------------------------------
# The comparison networks' objectives.


def keras22_categorical_ce(probs, labels):
  """Keras 2.2 backend.categorical_crossentropy on softmax outputs, float64."""
  eps = 1e-7
  p = np.asarray(probs, np.float64)
  p = p / p.sum(-1, keepdims=True)
  p = np.clip(p, eps, 1 - eps)
  onehot = np.eye(p.shape[-1])[np.asarray(labels, np.int64)]
  return float(np.mean(-np.sum(onehot * np.log(p), -1)))


def _softmax64(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_categorical_ce_matches_keras_and_clips():
  logits = np.array([[0.3, -1.2], [2.0, 0.5], [-0.4, 0.1], [1.0, 1.0]], np.float32)
  y = np.array([1, 0, 0, 1])
  got = float(losses.categorical_ce_with_logits(jnp.asarray(logits), jnp.asarray(y)))
  np.testing.assert_allclose(got, keras22_categorical_ce(_softmax64(logits), y),
                             rtol=1e-6)
  # Saturated softmax: Keras's clip bounds the loss at -log(1e-7).
  far = jnp.array([[50.0, -50.0], [-50.0, 50.0]])
  got = float(losses.categorical_ce_with_logits(far, jnp.array([1, 1])))
  np.testing.assert_allclose(got, (-np.log(1e-7) - np.log(1 - 1e-7)) / 2, rtol=1e-5)
  grad = jax.grad(lambda z: losses.categorical_ce_with_logits(z, jnp.array([1, 1])))(far)
  np.testing.assert_array_equal(np.asarray(grad)[0], 0.0)  # beyond the clip
  # Two classes: the same value as the BCE of the margin logit1 - logit0.
  z = jnp.asarray(logits)
  np.testing.assert_allclose(
      float(losses.categorical_ce_with_logits(z, jnp.asarray(y))),
      float(losses.bce_with_logits(losses.match_margin(z), jnp.asarray(y))), rtol=1e-5)


def test_bce_on_probability_matches_keras():
  p = np.array([0.0, 0.2, 0.5, 0.9, 1.0], np.float32)
  y = np.array([1, 0, 1, 1, 0], np.float32)
  got = float(losses.bce_on_probability(jnp.asarray(p), jnp.asarray(y)))
  # Keras clips in float32: 1 - 1e-7 is 1 - 2**-23 there.
  clipped = np.clip(p, np.float32(1e-7), np.float32(1 - 1e-7))
  np.testing.assert_allclose(got, keras22_bce(clipped, y), rtol=1e-5)
  np.testing.assert_allclose(got, keras22_bce(p[1:4], y[1:4]) * 3 / 5 + (
      -np.log(1e-7) - np.log(2.0 ** -23)) / 5, rtol=1e-5)


def test_objective_terms_per_network():
  rng = np.random.default_rng(0)
  y = jnp.array([0, 1, 1, 0])
  x = jnp.zeros((4, 64, 64, 1))
  soft = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
  cos = jnp.asarray(rng.uniform(size=(4,)), jnp.float32)
  sig = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  t = losses.objective_terms('scfdm', {'softmax': soft, 'cosine': cos}, y, x, x)
  assert list(t) == ['softmax', 'cosine']
  assert float(t['softmax']) == float(losses.categorical_ce_with_logits(soft, y))
  assert float(t['cosine']) == float(losses.bce_on_probability(cos, y))
  t = losses.objective_terms('afd_net', {'multi': soft, 'single': -soft}, y, x, x)
  assert float(t['single']) == float(losses.categorical_ce_with_logits(-soft, y))
  t = losses.objective_terms('efr_net', {'cat': sig, 'sub': -sig}, y, x, x)
  assert float(t['sub']) == float(losses.bce_with_logits(-sig, y))
  total = losses.objective_total('efr_net', t, {'cat': 2.0})
  np.testing.assert_allclose(float(total), 2 * float(t['cat']) + float(t['sub']),
                             rtol=1e-6)
  with pytest.raises(ValueError, match='catt'):
    losses.objective_total('efr_net', t, {'catt': 1.0})
  with pytest.raises(ValueError, match='no loss'):  # softmax output on a BCE net
    losses.objective_terms('fil_net', {'stage5': soft}, y, x, x)
  with pytest.raises(ValueError, match='known'):
    losses.objective_terms('resnet', {}, y, x, x)


def test_rrl_objective_is_the_multi_loss():
  out = _outputs()
  y = jnp.array([0.0, 1.0, 1.0, 0.0])
  x = jnp.zeros((4, 64, 64, 1))
  recon = losses.make_recon_loss('mse')
  a = losses.objective_terms('rrl_net', out, y, x, x, recon)
  b = losses.loss_terms(out, y, x, x, recon)
  assert list(a) == list(b) and all(float(a[k]) == float(b[k]) for k in a)
  w = {n: 1.0 for n in losses.LOSS_NAMES}
  assert float(losses.objective_total('rrl_net', a, w)) == float(
      losses.weighted_total(b, w))


def test_match_margin():
  soft = jnp.array([[0.2, 1.0], [3.0, -1.0]])
  np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(losses.match_margin(soft))),
                             np.asarray(jax.nn.softmax(soft)[:, 1]), rtol=1e-6)
  z = jnp.array([0.5, -2.0])
  assert np.array_equal(np.asarray(losses.match_margin(z)), np.asarray(z))
