"""BatchNorm moving averages kept as Keras 2.2 on TF 1.x kept them (zero-debiased)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax.training import bn_moving
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.heavy(seconds=80)

M = 0.99


def tf1_zero_debiased(values, momentum=M):
  """TF 1.x assign_moving_average(zero_debias=True), written out in float64.

  A 'biased' shadow variable and a step counter, both started at zero; after
  each update the visible variable is biased / (1 - momentum**step).
  """
  biased, out = np.zeros_like(values[0], np.float64), []
  for step, x in enumerate(values, start=1):
    biased = biased - (biased - x) * (1 - momentum)
    out.append(biased / (1 - momentum ** step))
  return out


def plain_ema(values, start, momentum=M):
  v = np.full_like(values[0], start, np.float64)
  for x in values:
    v = v - (v - x) * (1 - momentum)
  return v


def tf1_shared_layer(values, momentum=M):
  """A layer called k times per step under TF 1.x: one shadow per call.

  `_zero_debias` gives each call its own 'biased' / 'local_step' pair
  (unique names), and each call assigns its debiased value to the one
  variable; the last call's assignment is the one kept, so the variable
  follows the last call's own zero-debiased average.
  """
  return tf1_zero_debiased(values[:, -1], momentum)


def test_update_follows_tf1_zero_debias_for_layers_called_once_and_twice():
  rng = np.random.default_rng(0)
  steps = 40
  # 'once' is applied once per step, 'twice' twice (a shared layer, e.g. one
  # encoder on both spectra): the two calls see different statistics.
  once = rng.normal(3.0, 1.0, (steps, 5))
  twice = np.stack([rng.gamma(2.0, 0.01, (steps, 5)),
                    rng.gamma(2.0, 0.05, (steps, 5))], axis=1)
  stats = {'once': {'mean': jnp.zeros(5)}, 'twice': {'var': jnp.ones(5)}}
  update = jax.jit(bn_moving.zero_debiased_update)
  want_twice = tf1_shared_layer(twice)
  for s in range(steps):
    moments = {'once': {'mean': (jnp.float32(once[s]),)},
               'twice': {'var': tuple(jnp.float32(x) for x in twice[s])}}
    stats = update(stats, moments, jnp.int32(s))
    if s == 0:  # The first update replaces the start values entirely.
      np.testing.assert_allclose(stats['once']['mean'], once[0], rtol=1e-6)
    np.testing.assert_allclose(stats['twice']['var'], want_twice[s], rtol=2e-6)
  np.testing.assert_allclose(stats['once']['mean'], tf1_zero_debiased(once)[-1],
                             rtol=2e-6)
  # One sequence of 2 x 40 updates (flax's way for a shared layer) is not it.
  interleaved = tf1_zero_debiased(twice.reshape(-1, 5))[-1]
  assert np.all(np.abs(interleaved / np.asarray(stats['twice']['var']) - 1) > 0.1)
  # The plain average still carries the start value 1 * 0.99**40 = 0.67 in the
  # variance: the rules differ where it matters.
  assert np.all(plain_ema(twice[:, -1], 1.0) > 3 * np.asarray(stats['twice']['var']))


def test_plain_statistics_convert_to_zero_debiased():
  rng = np.random.default_rng(1)
  means, variances = rng.normal(2.0, 1.0, (487, 4)), rng.gamma(2.0, 1e-3, (487, 4))
  plain = {'bn': {'mean': plain_ema(means, 0.0), 'var': plain_ema(variances, 1.0)}}
  got = bn_moving.plain_to_zero_debiased(
      plain, 487, {('bn', 'mean'): 1, ('bn', 'var'): 1})
  np.testing.assert_allclose(got['bn']['mean'], tf1_zero_debiased(means)[-1], rtol=1e-5)
  np.testing.assert_allclose(got['bn']['var'], tf1_zero_debiased(variances)[-1], rtol=1e-5)
  # 0.99**487 = 0.0075 of the start value is still in the plain variance,
  # several times the variance itself.
  assert np.all(plain['bn']['var'] > 3 * got['bn']['var'])
  same = bn_moving.plain_to_zero_debiased(plain, 0, {})
  np.testing.assert_array_equal(same['bn']['var'], np.float32(plain['bn']['var']))
  # A layer applied twice per step: plain averaged both calls, TF 1.x kept one.
  with pytest.raises(ValueError, match='times per step cannot be converted.*: bn'):
    bn_moving.plain_to_zero_debiased(plain, 487, {('bn', 'mean'): 2, ('bn', 'var'): 2})


def test_updates_per_step_counts_shared_layers_twice():
  from rrl_jax.models import get_model  # pylint: disable=g-import-not-at-top
  kw = dict(widths=(4, 8), stage_heads=(2,), module_heads=(), head_hidden=(8,),
            patch_size=16)
  for shared, expected in ((False, {1}), (True, {1, 2})):
    model = get_model('rrl_net', shared_branches=shared, **kw)
    x = jnp.zeros((2, 16, 16, 1))
    variables = model.init(jax.random.key(0), x, x, train=True)
    counts = bn_moving.updates_per_step(model, variables)
    assert set(counts.values()) == expected, counts
    if shared:
      assert all(n == 2 for k, n in counts.items() if k[0] == 'encoder'), counts


def test_train_step_zero_debiased_equals_plain_run_converted():
  """The real train step, 3 steps under each rule from the same start.

  The rule never touches the weights; the zero-debiased statistics equal the
  plain run's converted ones.
  """
  from rrl_jax import sharding  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import losses, optim, step  # pylint: disable=g-import-not-at-top
  runs = {}
  for rule in bn_moving.RULES:
    config = tiny_config(bn_moving_average=rule, recon_loss='mse')
    mesh = sharding.make_mesh(1)
    model = step.make_model(config)
    total = config.num_train_steps  # As train.py builds it: the same program.
    tx = optim.make_optimizer(config.optimizer, total_steps=total)
    recon = losses.make_recon_loss('mse', vgg_params=None,
                                   pixel_weight=config.pixel_weight)
    train_step = step.make_train_step(model, tx, config, mesh, jax.random.key(0),
                                      recon, step.lr_schedule(config, total))
    state = step.init_state(model, tx, config, mesh)
    weights = step.loss_weights(config, mesh)
    rng = np.random.default_rng(0)
    b, p = config.batch_size, model.patch_size
    for _ in range(3):
      batch = {'xa': rng.integers(0, 256, (b, p, p, 1), np.uint8),
               'xb': rng.integers(0, 256, (b, p, p, 1), np.uint8),
               'label': rng.integers(0, 2, (b,)).astype(np.float32)}
      state, _ = train_step(state, step.global_batch(batch, mesh), weights)
    runs[rule] = (model, step.to_host(state.params), step.to_host(state.batch_stats))
  model, params, plain_stats = runs['plain']
  _, params_d, debiased = runs['zero_debiased']
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_d)):
    np.testing.assert_array_equal(a, b)
  counts = bn_moving.updates_per_step(
      model, {'params': params, 'batch_stats': plain_stats})
  converted = bn_moving.plain_to_zero_debiased(plain_stats, 3, counts)
  # In units of float32 rounding at each layer's scale: the plain statistics
  # hold the batch moments under a start value of 0.97 (variance), so their
  # rounding is amplified 1 / (1 - 0.99**3) = 34x by the conversion. An off-by-
  # one step count would be off by a third (1 - 0.99**2 vs 1 - 0.99**3).
  eps, worst = np.finfo(np.float32).eps, 0.0
  for a, b, p in zip(jax.tree.leaves(converted), jax.tree.leaves(debiased),
                     jax.tree.leaves(plain_stats)):
    unit = eps * (np.max(np.abs(p)) / (1 - M ** 3) + np.max(np.abs(b)))
    worst = max(worst, float(np.max(np.abs(a - b)) / unit))
  print(f'zero-debiased step vs converted plain run: {worst:.2f} rounding units')
  assert worst < 16, worst
  # ...and they differ from the plain ones after 3 steps (start weight 0.97).
  assert any(np.max(np.abs(a - b)) > 0.1 for a, b in
             zip(jax.tree.leaves(plain_stats), jax.tree.leaves(debiased)))
