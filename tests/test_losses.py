"""The multi-loss objective (rrl_jax.losses): BCE, reconstruction, terms, weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import losses, vgg19


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
