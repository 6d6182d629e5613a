"""Training parity with the official Keras model (docs/faithfulness.md, fixtures README).

Replays train_replay_seed0.npz: three train_on_batch steps of the official
model from its initial weights, MSE-only reconstruction (0.1 * MSE), no
augmentation, Keras 2.2 Nadam at 2e-4. Compiles the full model once.
"""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rrl_jax import convert
from rrl_jax.training import losses
from rrl_jax.training import optim
from rrl_jax.models import RRLNet
from conftest import KERAS_FIXTURES, require_path

pytestmark = [pytest.mark.heavy(seconds=45), pytest.mark.full_optimization]

REPLAY = os.path.join(KERAS_FIXTURES, 'train_replay_seed0.npz')
# Keras output names (fixture order) -> rrl_jax loss names.
KERAS_TO_RRL = {'branch5': 'stage5', 'branch4': 'stage4', 'branch3': 'stage3',
                'loss5': 'module5', 'loss4': 'module4', 'loss3': 'module3',
                'recon1': 'recon_a', 'recon2': 'recon_b'}


def _layers(data, prefix):
  layers = {}
  for key in data.files:
    if key.startswith(prefix + '/'):
      _, layer, weight = key.split('/')
      layers.setdefault(layer, {})[weight] = np.asarray(data[key])
  return layers


@functools.lru_cache(maxsize=None)
def _setup():
  data = np.load(require_path(REPLAY))
  variables, inference_only = convert.variables_from_keras_layers(
      _layers(data, 'init'), source=REPLAY)
  assert not inference_only
  model = RRLNet()
  opt = optim.keras_nadam(2e-4)
  recon = losses.make_recon_loss('mse')
  weights = {name: 1.0 for name in losses.LOSS_NAMES}

  @jax.jit
  def step(params, batch_stats, opt_state, xa, xb, y):
    def loss_fn(p):
      out, upd = model.apply({'params': p, 'batch_stats': batch_stats}, xa, xb,
                             train=True, mutable=['batch_stats'])
      terms = losses.loss_terms(out, y, xa, xb, recon)
      return losses.weighted_total(terms, weights), (terms, upd)
    (total, (terms, upd)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), upd['batch_stats'], opt_state,
            total, terms)

  return data, variables, opt, step


@functools.lru_cache(maxsize=None)
def _replay(order=tuple(range(8))):
  """Three steps; `order` permutes the examples of every batch (same maths)."""
  data, variables, opt, step = _setup()
  order = np.asarray(order)
  params = jax.tree_util.tree_map(jnp.asarray, variables['params'])
  batch_stats = jax.tree_util.tree_map(jnp.asarray, variables['batch_stats'])
  opt_state = opt.init(params)
  names = [str(n).replace('_loss', '') for n in data['trainsteps_loss_names']]
  got = np.zeros((3, len(names)))
  for i in range(3):
    xa = jnp.asarray(data['trainsteps_x1_u8'][i][order], jnp.float32) / 255.0
    xb = jnp.asarray(data['trainsteps_x2_u8'][i][order], jnp.float32) / 255.0
    y = jnp.asarray(data['trainsteps_y'][i][order], jnp.float32)
    params, batch_stats, opt_state, total, terms = step(
        params, batch_stats, opt_state, xa, xb, y)
    got[i] = [float(total) if n == 'total' else float(terms[KERAS_TO_RRL[n]])
              for n in names]
  after = convert.keras_layers_from_variables(
      {'params': params, 'batch_stats': batch_stats})
  return got, after


# Six seeded reorderings of the examples within each batch: mathematically the
# same three steps, different float32 summation order. Their largest spread from
# our own in-order run is the float32 reproducibility floor of this replay (two
# orderings proved too few: the floor estimate itself varies by ~3x).
REORDERINGS = tuple(tuple(np.random.default_rng(k).permutation(8)) for k in range(6))


def _weight_stats(after, reference, keys):
  """(max |diff|, number of elements off by > 1e-5) over the after3 weights."""
  worst, count = 0.0, 0
  for layer, weights in keys.items():
    for weight in weights:
      d = np.abs(after[layer][weight] - reference[layer][weight])
      worst, count = max(worst, float(d.max())), count + int((d > 1e-5).sum())
  return worst, count


def test_first_step_losses_within_1e5():
  """Step 1 runs at Keras's initial weights: forward + losses must agree."""
  data, _, _, _ = _setup()
  got, _ = _replay()
  diff = np.abs(got[0] - data['trainsteps_losses'][0])
  print('step 0 |loss diff| per output:', dict(zip(
      data['trainsteps_loss_names'], diff)))
  assert diff.max() < 1e-5


def test_replay_at_float32_reproducibility_floor():
  """Steps 2-3 and the weights after 3 steps: as close to Keras as float32 allows.

  Keras 2.2 Nadam divides each moment by sqrt(v) + 1e-7, so a gradient at
  rounding level (exactly zero in exact arithmetic, ~1e-7 in float32: the
  bias of every conv that feeds a BatchNorm; dense weights behind ReLUs active
  on one or two of the 8 examples) becomes a step of ~lr = 2e-4 whose sign is
  the rounding noise. Reordering the batch shows the resulting spread within
  rrl_jax itself; Keras must be no farther from us than that.
  """
  data, _, _, _ = _setup()
  want = _layers(data, 'after3')
  got, after = _replay()
  loss_diff = np.abs(got - data['trainsteps_losses']).max(axis=1)
  w_max, w_count = _weight_stats(after, want, want)
  floor_loss, floor_max, floor_count = np.zeros(3), 0.0, 0
  for order in REORDERINGS:
    other, other_after = _replay(order)
    floor_loss = np.maximum(floor_loss, np.abs(other - got).max(axis=1))
    m, c = _weight_stats(other_after, after, want)
    floor_max, floor_count = max(floor_max, m), max(floor_count, c)
  print(f'per-step max |loss diff| vs Keras {loss_diff}, reorder floor {floor_loss}')
  print(f'after3 weights vs Keras: max {w_max:.3g}, {w_count} elements > 1e-5; '
        f'reorder floor: max {floor_max:.3g}, {floor_count} elements > 1e-5')
  assert loss_diff[0] < 1e-5
  # Keras runs other convolution algorithms (oneDNN) than any reordering of
  # ours, so it may sit a little outside our own spread (measured: 1.45x at
  # step 2 with XLA's Eigen convolutions); a wrong update rule would be off by
  # orders of magnitude (every weight moves by ~lr = 2e-4 per step).
  assert np.all(loss_diff[1:] <= 2 * floor_loss[1:])
  assert w_count <= floor_count
  assert w_max <= 2 * floor_max


@pytest.mark.xfail(strict=True, reason=(
    'float32 rounding amplified by Nadam normalisation (see '
    'test_replay_at_float32_reproducibility_floor): reordering the batch moves '
    'our own losses by ~5e-5 and weights by ~6e-4'))
def test_replay_exact_1e5_losses_1e6_weights():
  data, _, _, _ = _setup()
  got, after = _replay()
  assert np.abs(got - data['trainsteps_losses']).max() < 1e-5
  want = _layers(data, 'after3')
  assert _weight_stats(after, want, want)[0] < 1e-6
