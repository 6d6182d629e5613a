"""Keras-faithful building blocks: upsampling rule, BatchNorm epsilon/momentum/variance."""
import jax
import jax.numpy as jnp
import numpy as np

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
