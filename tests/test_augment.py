"""On-device augmentation (rrl_jax.training.augment): imgaug SomeOf semantics and properties."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax.training import augment

RNG = jax.random.PRNGKey(42)
B = 8


def _cfg(**overrides):
  cfg = augment.default_augment_config()
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


@functools.lru_cache(maxsize=None)
def _augment_fn(**overrides):
  cfg = _cfg(**overrides)
  return jax.jit(lambda rng, step, xa, xb, offset=0: augment.augment_pairs(
      rng, step, xa, xb, cfg, index_offset=offset))


def _images(seed=0, batch=B):
  rng = np.random.default_rng(seed)
  # Smooth-ish images with structure in both axes.
  base = rng.uniform(size=(batch, 64, 64, 1)).astype(np.float32)
  return jnp.asarray(base), jnp.asarray(np.sqrt(base[:, ::-1]))


@functools.lru_cache(maxsize=None)
def _plans(n=6000, order='batch'):
  cfg = _cfg(order=order)
  plans = jax.jit(lambda r: augment.plan_batch(r, 5, n, cfg))(RNG)
  return jax.tree_util.tree_map(np.asarray, plans)


def test_default_config_is_the_official_pipeline():
  cfg = augment.default_augment_config()
  assert cfg.blur_sigma == (0.0, 0.0) and cfg.gamma == (0.5, 1.5)
  assert cfg.scale == (0.95, 1.05) and cfg.translate == 0.05
  assert cfg.noise_sd == 0.02 and cfg.image_ops == (0, 2) and cfg.pair_ops == (0, 2)
  assert (cfg.flip_lr_p, cfg.flip_ud_p) == (0.5, 0.5)


def test_someof_counts_and_op_frequencies():
  plans = _plans()
  for side, n_ops in (('a', 7), ('b', 7), ('pair', 5)):
    valid, ops = plans[side]['valid'], plans[side]['ops']
    n = len(valid)
    counts = np.bincount(valid.sum(1), minlength=3)
    # n uniform in {0, 1, 2}: each 1/3, binomial sd sqrt(n * 1/3 * 2/3).
    assert np.all(np.abs(counts - n / 3) < 5 * np.sqrt(n * 2 / 9)), counts
    # Distinct ops in the valid slots.
    both = valid.all(1)
    assert np.all(ops[both, 0] != ops[both, 1])
    # Each op is chosen with probability E[count] / n_ops = 1 / n_ops.
    freq = np.bincount(ops[valid], minlength=n_ops)
    p = 1.0 / n_ops
    assert np.all(np.abs(freq - n * p) < 5 * np.sqrt(n * p * (1 - p))), freq


def test_batch_order_is_one_permutation_per_batch():
  plans = _plans()
  for side in ('a', 'pair'):
    ops, valid = plans[side]['ops'], plans[side]['valid']
    pairs = {tuple(o) for o, v in zip(ops, valid) if v.all()}
    # imgaug random_order: one order per call, so (i, j) and (j, i) never both occur.
    assert not any((j, i) in pairs for i, j in pairs)
  example = _plans(2000, 'example')['a']
  pairs = {tuple(o) for o, v in zip(example['ops'], example['valid']) if v.all()}
  assert any((j, i) in pairs for i, j in pairs)


def test_parameter_ranges():
  plans = _plans()['a']
  assert plans['gamma'].min() >= 0.5 and plans['gamma'].max() <= 1.5
  assert plans['scale'].min() >= 0.95 and plans['scale'].max() <= 1.05
  assert np.abs(plans['shift']).max() <= 0.05 * 64 + 1e-6
  assert np.abs(plans['shift']).max() > 0.9 * 0.05 * 64
  assert np.all(plans['sigma'] == 0)
  coins = _plans()['pair']['flip_lr']
  assert abs(coins.mean() - 0.5) < 0.03


def test_outputs_in_range_and_deterministic():
  xa, xb = _images()
  fn = _augment_fn()
  a1, b1 = fn(RNG, 3, xa, xb)
  a2, b2 = fn(RNG, 3, xa, xb)
  np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))
  np.testing.assert_array_equal(np.asarray(b1), np.asarray(b2))
  assert a1.shape == xa.shape and a1.dtype == xa.dtype
  for x in (a1, b1):
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
  a3, _ = fn(RNG, 4, xa, xb)
  assert not np.array_equal(np.asarray(a1), np.asarray(a3))


def test_examples_without_ops_are_unchanged():
  xa, xb = _images(batch=32)
  a, b = _augment_fn()(RNG, 7, xa, xb)
  plans = augment.plan_batch(RNG, 7, 32, augment.default_augment_config())
  none_a = ~np.asarray(plans['a']['valid']).any(1) & ~np.asarray(plans['pair']['valid']).any(1)
  none_b = ~np.asarray(plans['b']['valid']).any(1) & ~np.asarray(plans['pair']['valid']).any(1)
  assert none_a.any() and none_b.any()
  np.testing.assert_array_equal(np.asarray(a)[none_a], np.asarray(xa)[none_a])
  np.testing.assert_array_equal(np.asarray(b)[none_b], np.asarray(xb)[none_b])
  changed = np.abs(np.asarray(a) - np.asarray(xa)).reshape(32, -1).max(1) > 0
  assert changed[~none_a].mean() > 0.7  # few draws are no-ops (blur, unlucky flip)


def test_zero_ops_is_identity():
  xa, xb = _images()
  a, b = _augment_fn(image_ops=(0, 0), pair_ops=(0, 0))(RNG, 1, xa, xb)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(xa))
  np.testing.assert_array_equal(np.asarray(b), np.asarray(xb))
  off = _cfg(enabled=False)
  assert augment.augment_pairs(RNG, 1, xa, xb, off) == (xa, xb)


def test_pair_transform_is_joint():
  xa, _ = _images()
  xb = 1.0 - xa  # flips/rotations permute pixels: must stay complementary
  fn = _augment_fn(image_ops=(0, 0), pair_ops=(2, 2))
  a, b = fn(RNG, 2, xa, xb)
  np.testing.assert_allclose(np.asarray(b), 1.0 - np.asarray(a), atol=1e-7)
  assert not np.array_equal(np.asarray(a), np.asarray(xa))
  # Each output is one of the 8 symmetries of its input.
  for x, y in zip(np.asarray(xa), np.asarray(a)):
    sym = [np.rot90(f, k) for f in (x, x[:, ::-1]) for k in range(4)]
    assert any(np.array_equal(y, s) for s in sym)


def test_keys_independent_of_batch_partitioning():
  xa, xb = _images()
  fn = _augment_fn()
  full_a, full_b = fn(RNG, 9, xa, xb)
  for lo in (0, 4):
    part_a, part_b = fn(RNG, 9, xa[lo:lo + 4], xb[lo:lo + 4], lo)
    np.testing.assert_array_equal(np.asarray(part_a), np.asarray(full_a)[lo:lo + 4])
    np.testing.assert_array_equal(np.asarray(part_b), np.asarray(full_b)[lo:lo + 4])
  keys = augment.example_keys(RNG, 9, 8)
  np.testing.assert_array_equal(np.asarray(keys[4:]),
                                np.asarray(augment.example_keys(RNG, 9, 4, 4)))


def _single_op_plan(op, **params):
  plan = dict(ops=jnp.array([op, 0]), valid=jnp.array([True, False]),
              sigma=jnp.zeros(2), gamma=jnp.ones(2), scale=jnp.ones(2),
              shift=jnp.zeros(2), noise_key=jax.random.split(RNG, 2))
  for k, v in params.items():
    plan[k] = jnp.array([v, 0.0])
  return plan


def test_single_ops():
  x = _images()[0][0]
  cfg = augment.default_augment_config()
  apply = lambda op, **p: np.asarray(augment.apply_image_plan(x, _single_op_plan(op, **p), cfg))
  xn = np.asarray(x)
  np.testing.assert_allclose(apply(1, gamma=0.5), np.sqrt(xn), rtol=1e-6)
  # Official blur (sigma 0) takes a slot and changes nothing.
  np.testing.assert_array_equal(apply(0), xn)
  # translate-x by one pixel: columns move right, symmetric border repeats column 0.
  y = apply(4, shift=1.0)
  np.testing.assert_allclose(y[:, 1:], xn[:, :-1], atol=1e-6)
  np.testing.assert_allclose(y[:, 0], xn[:, 0], atol=1e-6)
  y = apply(5, shift=-2.0)  # translate-y by -2: rows move up, last rows mirrored
  np.testing.assert_allclose(y[:-2], xn[2:], atol=1e-6)
  np.testing.assert_allclose(y[-2:], xn[::-1][:2], atol=1e-6)
  # scale-x about the centre (31.5): symmetric around it, rows untouched.
  y = apply(2, scale=1.05)
  ramp = np.tile(np.abs(np.arange(64) - 31.5)[None, :, None], (64, 1, 1))
  y2 = np.asarray(augment.apply_image_plan(
      jnp.asarray(ramp / 32, jnp.float32), _single_op_plan(2, scale=2.0), cfg)) * 32
  cols = np.r_[20:31, 33:44]  # away from the kink at the centre
  np.testing.assert_allclose(y2[:, cols], ramp[:, cols] / 2, atol=1e-5)
  assert not np.allclose(y, xn)
  y = apply(6)
  d = y - xn
  inner = (xn > 0.1) & (xn < 0.9)
  assert abs(d[inner].std() - 0.02) < 0.004 and abs(d[inner].mean()) < 0.003
  assert y.min() >= 0 and y.max() <= 1


def test_configurable_blur():
  x = _images()[0][0]
  cfg = _cfg(blur_sigma=(1.0, 1.0))
  y = np.asarray(augment.apply_image_plan(x, _single_op_plan(0, sigma=1.0), cfg))
  xn = np.asarray(x)
  assert y.std() < 0.6 * xn.std()
  np.testing.assert_allclose(y.mean(), xn.mean(), atol=0.01)
  const = jnp.full((64, 64, 1), 0.3)
  np.testing.assert_allclose(
      augment.apply_image_plan(const, _single_op_plan(0, sigma=1.0), cfg), 0.3, atol=1e-6)


def test_bad_input_and_order():
  xa, xb = _images()
  with pytest.raises(ValueError, match='float'):
    augment.augment_pairs(RNG, 0, (xa * 255).astype(jnp.uint8), xb, _cfg())
  with pytest.raises(ValueError, match='order'):
    augment.augment_pairs(RNG, 0, xa, xb, _cfg(order='sorted'))
