"""MGLA (REFERENCE "MGLA"): kernel-size formula, parameter count, gating semantics."""
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


def test_custom_backward_equals_autodiff(monkeypatch):
  from rrl_jax.models import mgla  # pylint: disable=g-import-not-at-top
  m = MGLA()
  x = jax.random.normal(jax.random.key(0), (2, 16, 8, 6))
  weights = jax.random.normal(jax.random.key(2), x.shape)
  params = m.init(jax.random.key(1), x)['params']

  def loss(p, x):
    return (jax.numpy.sin(m.apply({'params': p}, x)) * weights).sum()
  got = {}
  for flag in (False, True):
    monkeypatch.setattr(mgla, 'MGLA_CUSTOM_VJP', flag)
    got[flag] = (loss(params, x), jax.grad(loss, (0, 1))(params, x))
  assert got[True][0] == got[False][0]  # the forward pass is the same code
  for a, b in zip(jax.tree_util.tree_leaves(got[False][1]),
                  jax.tree_util.tree_leaves(got[True][1])):
    assert np.abs(a).max() > 1e-3  # every gradient is exercised
    np.testing.assert_allclose(b, a, atol=2e-6)
