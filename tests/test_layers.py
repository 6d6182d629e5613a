"""Keras-faithful building blocks: upsampling rule, BatchNorm epsilon/momentum/variance."""
import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax.models import layers
from rrl_jax.models.layers import BATCH_MOMENTS, BatchNorm, upsample_bilinear_x2


def test_upsample_follows_tf1_rule_not_half_pixel():
  x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1) ** 1.5
  y = np.asarray(upsample_bilinear_x2(jnp.asarray(x)))[0, ..., 0]
  src = x[0, ..., 0]
  # Rows: out[2i] = in[i], out[2i+1] = mean of in[i], in[i+1], last repeated.
  rows = np.empty((6, 4), np.float32)
  rows[0::2] = src
  rows[1::2] = (src + np.vstack([src[1:], src[-1:]])) / 2
  want = np.empty((6, 8), np.float32)
  want[:, 0::2] = rows
  want[:, 1::2] = (rows + np.hstack([rows[:, 1:], rows[:, -1:]])) / 2
  np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
  half_pixel = np.asarray(jax.image.resize(jnp.asarray(x), (1, 6, 8, 1), 'bilinear'))
  assert np.abs(half_pixel[0, ..., 0] - want).max() > 0.1


def test_batchnorm_keras_epsilon_momentum_and_unbiased_update():
  rng = np.random.default_rng(0)
  x = rng.normal(2.0, 3.0, size=(4, 3, 3, 5)).astype(np.float32)
  bn = BatchNorm()
  variables = bn.init(jax.random.PRNGKey(0), x, train=False)
  y, updates = bn.apply(variables, x, train=True, mutable=['batch_stats'])
  mean = x.mean((0, 1, 2))
  var = x.var((0, 1, 2))  # biased, for normalisation
  np.testing.assert_allclose(np.asarray(y), (x - mean) / np.sqrt(var + 1e-3),
                             atol=2e-5)
  n = 4 * 3 * 3
  stats = updates['batch_stats']
  np.testing.assert_allclose(stats['mean'], 0.01 * mean, rtol=1e-5)
  np.testing.assert_allclose(stats['var'], 0.99 + 0.01 * var * n / (n - 1.001), rtol=1e-5)
  # The variance fed to the moving average is Keras 2.2's n / (n - 1 - epsilon)
  # times the biased one, not Bessel's n / (n - 1): 0.1 % apart at n = 2.
  pair = x[:2, :1, :1]
  _, sown = bn.apply(variables, pair, train=True, mutable=['batch_stats', BATCH_MOMENTS])
  (fed,) = sown[BATCH_MOMENTS]['var']
  np.testing.assert_allclose(fed, pair.var((0, 1, 2), dtype=np.float64) * 2 / 0.999,
                             rtol=2e-6)
  # Inference mode uses the moving statistics with epsilon 1e-3.
  y_inf = bn.apply(variables, x, train=False)
  np.testing.assert_allclose(np.asarray(y_inf), x / np.sqrt(1 + 1e-3), rtol=1e-6)


def _batchnorm_autodiff(x, scale, bias, eps=1e-3):
  """The training-mode BatchNorm formula, left to autodiff."""
  mean = jnp.mean(x, (0, 1, 2))
  var = jnp.mean(jnp.square(x - mean), (0, 1, 2))
  inv = scale * jax.lax.rsqrt(var + eps)
  return x * inv + (bias - mean * inv), mean, var


def test_batchnorm_custom_backward_equals_autodiff():
  """bn_train's hand-written VJP (also through mean and var) equals autodiff."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(1.0, 2.0, (3, 4, 5, 6)), jnp.float32)
  scale = jnp.asarray(rng.uniform(0.5, 2.0, 6), jnp.float32)
  bias = jnp.asarray(rng.normal(size=6), jnp.float32)
  w = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in (x.shape, 6, 6)]

  def loss(fn):
    def f(x, scale, bias):
      y, mean, var = fn(x, scale, bias)
      return jnp.sum(jnp.sin(y) * w[0]) + jnp.sum(mean * w[1] + var * w[2])
    return jax.value_and_grad(f, argnums=(0, 1, 2))(x, scale, bias)

  got_v, got = loss(lambda *a: layers.bn_train(*a, 1e-3))
  want_v, want = loss(_batchnorm_autodiff)
  np.testing.assert_allclose(got_v, want_v, rtol=1e-6)
  for g, h in zip(got, want):
    np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-5)


def test_batchnorm_module_same_with_and_without_custom_backward(monkeypatch):
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(0.5, 1.5, (4, 3, 3, 5)), jnp.float32)
  bn = BatchNorm()
  variables = bn.init(jax.random.PRNGKey(0), x, train=False)
  results = []
  for flag in (False, True):
    monkeypatch.setattr(layers, 'BN_CUSTOM_VJP', flag)
    def f(params):
      y, upd = bn.apply({'params': params, 'batch_stats': variables['batch_stats']},
                        x, train=True, mutable=['batch_stats'])
      return jnp.sum(jnp.cos(y) * x), upd
    results.append(jax.value_and_grad(f, has_aux=True)(variables['params']))
  (v0, s0), g0 = results[0]
  (v1, s1), g1 = results[1]
  assert float(v0) == float(v1)  # forward and batch statistics: bit-identical
  jax.tree.map(np.testing.assert_array_equal, s0, s1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               g0, g1)


def _cbl_loss_and_grads(monkeypatch, flag):
  monkeypatch.setattr(layers, 'CONV_BIAS_STOP_GRADIENT', flag)
  m = layers.CBL(4)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 2))
  v = m.init(jax.random.key(1), x, True)
  v = jax.tree_util.tree_map(lambda a: a + 0.1, v)  # a nonzero conv bias

  def loss(p):
    y, upd = m.apply({'params': p, 'batch_stats': v['batch_stats']}, x, True,
                     mutable=['batch_stats'])
    return jnp.sum(jnp.sin(y)), upd
  (value, upd), grads = jax.value_and_grad(loss, has_aux=True)(v['params'])
  return v, value, upd, grads


def test_conv_bias_stop_gradient_zeroes_only_the_bias_gradient(monkeypatch):
  v, value, upd, grads = _cbl_loss_and_grads(monkeypatch, False)
  v2, value2, upd2, grads2 = _cbl_loss_and_grads(monkeypatch, True)
  assert (jax.tree_util.tree_structure(v2['params'])
          == jax.tree_util.tree_structure(v['params']))  # the parameter stays
  # Autodiff's bias gradient is rounding noise; the switch makes it exactly zero.
  assert 0 < np.abs(grads['conv']['bias']).max() < 1e-3
  assert np.all(grads2['conv']['bias'] == 0)
  np.testing.assert_allclose(value2, value, rtol=1e-6)
  np.testing.assert_allclose(grads2['conv']['kernel'], grads['conv']['kernel'], atol=1e-5)
  np.testing.assert_allclose(grads2['bn']['scale'], grads['bn']['scale'], atol=1e-5)
  # The moving mean still tracks conv + bias.
  np.testing.assert_allclose(upd2['batch_stats']['bn']['mean'],
                             upd['batch_stats']['bn']['mean'], atol=1e-6)
