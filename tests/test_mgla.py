"""MGLA (paper Sec. 3.2): kernel-size formula, parameter count, gating semantics."""
import jax
import numpy as np
import pytest

from rrl_jax.models.mgla import MGLA, mgla_kernel_size


@pytest.mark.parametrize('n,k', [(4, 1), (8, 3), (16, 3), (32, 3), (64, 3),
                                 (128, 5), (256, 5)])
def test_kernel_size_formula(n, k):
  assert mgla_kernel_size(n) == k


def test_parameters_on_4x4x256_map():
  x = np.zeros((1, 4, 4, 256), np.float32)
  params = MGLA().init(jax.random.PRNGKey(0), x)['params']
  assert params['channel']['conv1d']['kernel'].shape == (5, 1, 1)
  assert params['height']['conv1d']['kernel'].shape == (1, 1, 1)
  assert sum(a.size for a in jax.tree_util.tree_leaves(params)) == 6 + 2 + 2


def test_gates_against_a_direct_numpy_reading():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 8, 4, 16)).astype(np.float32)
  module = MGLA()
  params = module.init(jax.random.PRNGKey(3), x)
  got = np.asarray(module.apply(params, x))

  def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  def conv1d_same(v, p):  # v (n,), kernel (k, 1, 1)
    k = p['kernel'][:, 0, 0]
    pad = len(k) // 2
    vp = np.pad(v, pad)
    return np.array([vp[i:i + len(k)] @ k for i in range(len(v))]) + p['bias'][0]

  sig = lambda z: 1 / (1 + np.exp(-z))
  p = jax.tree_util.tree_map(np.asarray, params['params'])
  for i in range(2):
    xi = x[i]
    h, w, c = xi.shape
    s_c = softmax(xi.mean(-1).reshape(-1)).reshape(h, w)
    s_h = softmax(xi.mean(0).reshape(-1)).reshape(w, c)
    s_w = softmax(xi.mean(1).reshape(-1)).reshape(h, c)
    g_c = sig(conv1d_same(np.einsum('hwc,hw->c', xi, s_c), p['channel']['conv1d']))
    g_h = sig(conv1d_same(np.einsum('hwc,wc->h', xi, s_h), p['height']['conv1d']))
    g_w = sig(conv1d_same(np.einsum('hwc,hc->w', xi, s_w), p['width']['conv1d']))
    want = xi * g_c[None, None, :] * g_h[:, None, None] * g_w[None, :, None]
    np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
