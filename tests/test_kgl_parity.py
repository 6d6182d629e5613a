"""KGL-Net at parity with the official PyTorch code (tests/fixtures/kgl).

The fixture was written by tests/fixtures/kgl/make_fixtures.py, which ran the
official model and training code on weights from seeded_weights.py; here the
same weights are rebuilt from that rule and mapped by rrl_jax/torch_import.py.
"""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from rrl_jax import torch_import
from rrl_jax.models.kgl_net import KGLNet, hardest_negatives
from rrl_jax.training import losses
from rrl_jax.training.optim import adam_per_network

pytestmark = pytest.mark.full_optimization

HERE = os.path.join(os.path.dirname(__file__), 'fixtures', 'kgl')
FIXTURE = os.path.join(HERE, 'kgl_parity.npz')
TOL = 1e-5


def _load_module(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f'{name}.py'))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.fixture(scope='module')
def fx():
  if not os.path.exists(FIXTURE):
    pytest.skip(f'{FIXTURE} absent: run tests/fixtures/kgl/make_fixtures.py')
  return dict(np.load(FIXTURE))


def seeded_variables():
  """(model, official state_dicts, variables, extras) from the seeded rule."""
  rule = _load_module('seeded_weights')
  model = KGLNet(frn_eps=rule.FRN_EPS)
  shapes = torch_import.variable_shapes(model)
  zeros = {c: traverse_util.unflatten_dict(
      {k: np.zeros(v.shape, np.float32) for k, v in t.items()})
           for c, t in shapes.items()}
  torch_shapes = {net: {k: v.shape for k, v in sd.items()}
                  for net, sd in torch_import.to_torch(zeros, model).items()}
  state_dicts = {net: rule.seeded_state_dict(s) for net, s in torch_shapes.items()}
  variables, extras = torch_import.from_torch(state_dicts, model)
  return model, state_dicts, variables, extras


@pytest.fixture(scope='module')
def seeded():
  return seeded_variables()


def _inputs(fx):
  f = lambda x: jnp.asarray(x, jnp.float32)[..., None] / 255.0
  return f(fx['xa']), f(fx['xb'])


def _close(name, got, want, tol=TOL):
  """max |got - want| / max(1, |want|) <= tol (absolute below 1, relative above)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (name, got.shape, want.shape)
  err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))) if got.size else 0.0
  print(f'{name}: max error {err:.3g}')
  assert err <= tol, f'{name}: max error {err:.3g} > {tol}'
  return err


def test_weights_are_the_fixtures(fx, seeded):
  _, state_dicts, _, _ = seeded
  for net, sd in state_dicts.items():
    for k, v in sd.items():
      want = fx[f'weight_sum/{net}/{k}']
      np.testing.assert_allclose(np.float64(v).sum(), want, rtol=1e-6, atol=1e-6,
                                 err_msg=f'{net}/{k}: the seeded rule changed')


def test_eval_outputs(fx, seeded):
  model, _, variables, _ = seeded
  xa, xb = _inputs(fx)
  out = model.apply(variables, xa, xb, train=False)
  _close('desc_a', out['desc_a'], fx['eval_desc_a'])
  _close('desc_b', out['desc_b'], fx['eval_desc_b'])
  _close('P(match)', model.match_probability(out), fx['eval_prob'])
  score = model.apply(variables, xa, xb, train=False, score_only=True)
  _close('score_only P(match)', jax.nn.sigmoid(score), fx['eval_prob'])


def test_frn_eps_is_used_as_absolute_value(fx, seeded):
  model, _, variables, _ = seeded
  xa, xb = _inputs(fx)
  flipped = model.clone(frn_eps=-model.frn_eps)
  _close('|eps|', flipped.apply(variables, xa, xb)['desc_a'], fx['eval_desc_a'])
  other = model.clone(frn_eps=1e-6).apply(variables, xa, xb)['desc_a']
  assert np.max(np.abs(np.asarray(other) - fx['eval_desc_a'])) > 10 * TOL


def _train_forward(model, variables, xa, xb):
  return model.apply(variables, xa, xb, train=True, mutable=['batch_stats'])


def test_train_outputs_and_batch_norm_statistics(fx, seeded):
  model, _, variables, _ = seeded
  xa, xb = _inputs(fx)
  out, new_vars = _train_forward(model, variables, xa, xb)
  for k in ('desc_a', 'desc_b'):
    _close(k, out[k], fx[f'train_{k}'])
  # The raw descriptors are the head conv (16384-term float32 sums, up to 2.2)
  # divided by the std of 8 samples (down to 0.13 here): rounding of either
  # framework, amplified ~8x, measured 1.5e-5. The normalised ones are at 1e-5.
  for k in ('desc_raw_a', 'desc_raw_b'):
    _close(k, out[k], fx[f'train_{k}'], tol=3 * TOL)
  bn = new_vars['batch_stats']['descriptor']['layer9_com1_bn']
  _close('running_mean', bn['mean'], fx['train_running_mean'])
  _close('running_var', bn['var'], fx['train_running_var'])


def test_loss_terms_and_mined_indices(fx, seeded):
  model, _, variables, _ = seeded
  xa, xb = _inputs(fx)
  out, _ = _train_forward(model, variables, xa, xb)
  mined = hardest_negatives(out['desc_a'], out['desc_b'])
  for k in ('LR', 'LL', 'RR', 'RL'):
    np.testing.assert_array_equal(mined[f'index_{k}'], fx[f'index_{k}'], err_msg=k)
  terms = losses.objective_terms('kgl_net', out, None, xa, xb)
  assert list(terms) == list(KGLNet.output_names)
  for k, v in terms.items():
    _close(k, v, fx[f'loss_{k}'])
  _close('total', losses.objective_total('kgl_net', terms, {}), fx['loss_total'])


def test_one_adam_step(fx, seeded):
  model, _, variables, extras = seeded
  xa, xb = _inputs(fx)

  def loss_fn(params):
    out, new_vars = _train_forward(
        model, {'params': params, 'batch_stats': variables['batch_stats']}, xa, xb)
    terms = losses.objective_terms('kgl_net', out, None, xa, xb)
    return losses.objective_total('kgl_net', terms, {}), new_vars['batch_stats']

  grads, batch_stats = jax.grad(loss_fn, has_aux=True)(variables['params'])
  tx = adam_per_network(5e-3, 5e-5)
  updates, _ = tx.update(grads, tx.init(variables['params']), variables['params'])
  params = optax.apply_updates(variables['params'], updates)
  stepped = torch_import.to_torch({'params': params, 'batch_stats': batch_stats},
                                  model, extras)
  before = torch_import.to_torch(variables, model, extras)
  g_torch_layout = torch_import.to_torch({'params': grads, 'batch_stats': batch_stats},
                                         model, extras)
  index = _load_module('make_fixtures').sample_index
  g_max = {net: max(np.abs(v).max() for v in sd.values())
           for net, sd in g_torch_layout.items()}
  checked, sign_only, flipped = 0, [], []
  for net, sd in stepped.items():
    lr = 5e-3 if net == 'descriptor' else 5e-5
    for k, v in sd.items():
      key = f'step/{net}/{k}'
      if key not in fx or k.startswith('layer9_com1.1.running'):
        continue
      i = index(v.size)
      got, want = v.reshape(-1)[i], fx[key]
      g = np.abs(g_torch_layout[net][k].reshape(-1))
      # Adam's first step is lr * g / (|g| + 1e-8): for a gradient at the
      # float32 rounding floor (zero up to rounding, e.g. the bias before the
      # training-mode BatchNorm) its sign is arbitrary in either framework;
      # there only the step size is checked.
      tiny = g[i] <= 1e-5 * g_max[net]
      step_size = np.abs(want - before[net][k].reshape(-1)[i])
      assert np.all(step_size <= lr + 1e-6), key  # + float32 rounding of p
      err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
      sign_only += [f'{key}[{j}]' for j in i[tiny & (err > TOL)]]
      flipped += [f'{key}[{j}]' for j in i[~tiny & (err > TOL)]]
      checked += i.size
  print(f'{checked} sampled values; beyond {TOL}: {len(sign_only)} with a gradient '
        f'at the rounding floor ({sorted({n.split("[")[0] for n in sign_only})}), '
        f'others {flipped}')
  assert checked > 6000 and len(sign_only) < 0.02 * checked, sign_only
  # A gradient that changes sign between float32 evaluation orders (measured:
  # XLA:CPU's two convolution runtimes) flips Adam's first step (2 lr apart).
  assert len(flipped) <= 2, flipped
