"""BatchNorm moving averages as the official code kept them (docs/faithfulness.md).

The official code runs Keras 2.2 on TF 1.x, whose BatchNormalization updates
moving_mean and moving_variance with `assign_moving_average(..., zero_debias=True)`:
a shadow average that starts at zero, divided by 1 - momentum**t after its t-th
update. The initial 0 (mean) and 1 (variance) never enter, and after the first
step the moving statistics are that step's batch statistics. On the variable
itself this is the recurrence

    v_t = v_{t-1} + (x_t - v_{t-1}) * (1 - momentum) / (1 - momentum**t),

which `zero_debiased_update` applies in the train step ('zero_debiased', the
default). A layer applied k times per step (shared branches) gets, in TF 1.x,
one shadow average and one counter per call (`_zero_debias` makes them unique:
'biased', 'biased_1', ...), and every call assigns its own debiased value to
the same variable; the updates are grouped without an order, so one call's
average survives each step. We keep the last call's, with t counting steps.

tf.keras 2.x and flax keep the plain average started at 0 / 1
('plain': `rrl_jax.models.layers.BatchNorm` computes it), where the start
value still weighs momentum**t: 0.75 % after 487 steps, which adds 0.0075 to
every moving variance -- many times the true variance of the deeper layers, so
the model scores near chance for hundreds of steps (docs/studies/scenes_budget).

`plain_to_zero_debiased` turns the statistics of a run trained with 'plain'
into the ones 'zero_debiased' would have kept (the training itself never reads
the moving averages, so the weights are the same).
"""
from typing import Any, Dict, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax.models.layers import BATCH_MOMENTS, BatchNorm
from rrl_jax.training.workdir import LEGACY_VALUES

RULES = ('zero_debiased', 'plain')
DESCRIPTIONS = {
    'zero_debiased': 'zero-debiased as Keras 2.2 on TF 1.x',
    'plain': 'plain average from 0 / 1 as tf.keras 2.x',
}
MOMENTUM = BatchNorm.momentum
_START = {'mean': 0.0, 'var': 1.0}  # BatchNorm's initial moving statistics.


def rule(config) -> str:
  """The run's rule; a config saved before the option existed gets the rule it ran with."""
  return config.get('bn_moving_average', LEGACY_VALUES['bn_moving_average'])


def _path_keys(path) -> tuple:
  return tuple(getattr(k, 'key', k) for k in path)


def _lookup(tree: Mapping[str, Any], keys: tuple):
  for k in keys:
    tree = tree[k]
  return tree


def zero_debiased_update(batch_stats, moments, steps_done: jax.Array,
                         momentum: float = MOMENTUM):
  """The moving statistics after one train step, zero-debiased.

  Args:
    batch_stats: the moving statistics before the step.
    moments: the step's BATCH_MOMENTS collection: for every layer, 'mean' and
      'var' as tuples of the k batch moments it fed its moving averages, in
      call order (k > 1 for a layer applied k times per step; the last call's
      average is the one kept, as the module docstring explains).
    steps_done: train steps completed before this one (TrainState.step).
    momentum: the BatchNorm momentum.
  """
  m = jnp.float32(momentum)
  t = (steps_done + 1).astype(jnp.float32)
  rate = (1.0 - m) / (1.0 - jnp.power(m, t))

  def update(path, v):
    x = _lookup(moments, _path_keys(path))[-1]
    return v + (x - v) * rate

  return jax.tree_util.tree_map_with_path(update, batch_stats)


def updates_per_step(model, variables: Mapping[str, Any]) -> Dict[tuple, int]:
  """{batch_stats leaf path: moving-average updates per train step} (shape-only)."""
  p = getattr(model, 'patch_size', 64)
  x = jax.ShapeDtypeStruct((2, p, p, 1), jnp.float32)

  def apply(v, xa, xb):
    return model.apply(v, xa, xb, train=True,
                       mutable=['batch_stats', BATCH_MOMENTS])[1][BATCH_MOMENTS]

  sown = jax.eval_shape(apply, dict(variables), x, x)
  counts = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(
      variables['batch_stats']):
    keys = _path_keys(path)
    try:
      counts[keys] = len(_lookup(sown, keys))
    except KeyError:  # Not on this model's training path (e.g. pruned away).
      counts[keys] = 1
  return counts


def plain_to_zero_debiased(batch_stats, steps: int, counts: Mapping[tuple, int],
                           momentum: float = MOMENTUM):
  """Statistics kept by 'plain' after `steps` train steps -> 'zero_debiased' ones.

  Plain after t updates: momentum**t * start + S_t, with S_t the zero-started
  average; zero-debiased: S_t / (1 - momentum**t). `counts` is
  `updates_per_step`; a layer applied more than once per step cannot be
  converted (plain averages all its calls, TF 1.x keeps one call's), which is
  an error. steps = 0 returns the statistics unchanged.
  """
  if steps <= 0:
    return jax.tree.map(lambda v: np.asarray(v, np.float32), batch_stats)
  shared = sorted('/'.join(map(str, k[:-1])) for k, n in counts.items() if n > 1)
  if shared:
    raise ValueError(
        f'BatchNorm layers applied {max(counts.values())} times per step cannot be '
        f'converted from the plain rule (it averages all their calls; TF 1.x keeps '
        f'one call\'s average): {", ".join(dict.fromkeys(shared))}.')

  def convert(path, v):
    keys = _path_keys(path)
    decay = float(momentum) ** steps
    v = np.asarray(v, np.float64)
    return ((v - decay * _START[keys[-1]]) / (1.0 - decay)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(convert, batch_stats)
