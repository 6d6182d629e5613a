"""Precise BatchNorm: population statistics from K training batches (README "Precise BN").

The moving averages (momentum 0.99) lag the weights after a short or fast-moving
run, and inference uses them. `recalibrate` replaces every BatchNorm layer's
moving mean and variance by the exact average, over K batches, of the batch
mean and the batch variance the layer computes in training mode, with the
weights frozen and no EMA. The variance is the one the moving variance is fed
with (Keras 2.2: n / (n - 1 - epsilon) x the biased one;
rrl_jax/models/layers.py), so recalibrated statistics are drop-in `batch_stats`.

The forward pass is one jitted function over the Mesh the train step uses: each
batch is a global batch sharded on 'data' (every process passes its own rows,
as to the train step), the statistics are over the global batch and the result
is replicated, so every process returns identical numbers. Optionally the
batches are augmented with the train step's augmentation code.
"""
import functools
import json
from typing import Any, Dict, Iterable, Mapping, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from rrl_jax.training import augment
from rrl_jax.training import bn_moving
from rrl_jax.models.layers import BATCH_MOMENTS
from rrl_jax.sharding import batch_sharding, replicated

# Folded into the caller's key so augmentation draws differ from the train
# step's draws at the same step number.
_RNG_TAG = 0x0BA7C4


def _config_key(cfg) -> Optional[str]:
  if cfg is None:
    return None
  as_dict = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
  return json.dumps(as_dict, sort_keys=True, default=list)


@functools.lru_cache(maxsize=16)
def _moments_fn(model, mesh: Mesh, score_only: bool, augment_json: Optional[str]):
  """Jitted (variables, xa, xb, rng, index) -> {'batch_moments': tree} (replicated)."""
  aug_cfg = None
  if augment_json is not None:
    import ml_collections  # pylint: disable=g-import-not-at-top
    aug_cfg = ml_collections.ConfigDict(json.loads(augment_json))

  def moments(variables, xa, xb, rng_data, index):
    rng = jax.random.wrap_key_data(rng_data)
    xa = xa.astype(jnp.float32) / (255.0 if xa.dtype == jnp.uint8 else 1.0)
    xb = xb.astype(jnp.float32) / (255.0 if xb.dtype == jnp.uint8 else 1.0)
    if aug_cfg is not None and aug_cfg.enabled:
      xa, xb = augment.augment_pairs(rng, index, xa, xb, aug_cfg)
    _, sown = model.apply(variables, xa, xb, train=True, score_only=score_only,
                          mutable=['batch_stats', BATCH_MOMENTS])
    # A layer applied m times in one pass sows m entries; the moving averages
    # would take m updates, so the batch's moments are their mean.
    return jax.tree.map(lambda xs: jnp.mean(jnp.stack(xs), 0),
                        sown[BATCH_MOMENTS], is_leaf=lambda x: isinstance(x, tuple))

  repl, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(moments, in_shardings=(repl, data, data, repl, repl),
                 out_shardings=repl)


def _host_copy(x):
  """A replicated array (or numpy) as numpy, on any process count."""
  return np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x)


def _to_host(tree):
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0), np.float64)
                      if isinstance(x, jax.Array) else np.asarray(x, np.float64), tree)


def _flat(tree) -> Dict[tuple, Any]:
  return {tuple(getattr(k, 'key', k) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def recalibrate(model, variables: Mapping[str, Any], batches: Iterable[Mapping[str, Any]],
                mesh: Mesh, *, augment_cfg=None, rng: Optional[jax.Array] = None,
                num_batches: Optional[int] = None) -> Dict[str, Any]:
  """New `batch_stats`: population statistics over `batches` (numpy, float32).

  Args:
    model: the RRLNet the variables belong to.
    variables: {'params', 'batch_stats'}, full or MLPP-pruned (then only the
      inference subtree's layers exist and are recalibrated).
    batches: iterable of this process's rows of each global batch:
      {'xa', 'xb': (B_local, P, P, 1) uint8 (or float in [0, 1])}, other keys
      ignored (e.g. `rrl_jax.data.pipeline.BatchIterator` output).
    mesh: the 1-D 'data' mesh of the train step (all devices of all processes).
    augment_cfg: the train augmentation config (`config.augment`) to augment
      the batches as the train step does; None or disabled: raw batches.
    rng: key for the augmentation draws (default: key 0).
    num_batches: stop after this many batches (default: exhaust `batches`).

  Returns:
    batch_stats with the same tree as variables['batch_stats'], every layer's
    'mean' the average of its K batch means and 'var' the average of its K
    unbiased batch variances.
  """
  from rrl_jax.training.step import global_batch  # pylint: disable=g-import-not-at-top
  params = variables['params']
  old_stats = variables.get('batch_stats', {})
  # MLPP-pruned variables (rrl_jax/pruning.py) hold only the score path: apply that.
  from rrl_jax import pruning  # pylint: disable=g-import-not-at-top
  pruned = pruning.inference_variables(dict(variables), model)
  score_only = (pruning.count_parameters(pruned['params'])
                == pruning.count_parameters(params))
  use_aug = augment_cfg is not None and bool(augment_cfg.enabled)
  fn = _moments_fn(model, mesh, score_only, _config_key(augment_cfg) if use_aug else None)
  rng = jax.random.key(0) if rng is None else rng
  # Host values identical on every process -> replicated global arrays (also
  # across processes, where device_put of host data is not enough).
  rng_data = replicate(np.asarray(jax.random.key_data(
      jax.random.fold_in(rng, _RNG_TAG))), mesh)
  device_vars = replicate(jax.tree.map(_host_copy, {'params': params,
                                                    'batch_stats': old_stats}), mesh)
  total, count = None, 0
  for batch in batches:
    if num_batches is not None and count >= num_batches:
      break
    g = global_batch({'xa': batch['xa'], 'xb': batch['xb']}, mesh)
    index = replicate(np.int32(count), mesh)
    sown = _to_host(fn(device_vars, g['xa'], g['xb'], rng_data, index))
    total = sown if total is None else jax.tree.map(np.add, total, sown)
    count += 1
  if count == 0:
    raise ValueError('recalibrate: no batches given (need K >= 1).')
  if num_batches is not None and count < num_batches:
    raise ValueError(f'recalibrate: asked for {num_batches} batches, the iterable '
                     f'gave {count}.')
  means = _flat(jax.tree.map(lambda s: (s / count).astype(np.float32), total))
  old = _flat(old_stats)
  missing = sorted(set(means) - set(old))
  if missing:
    raise ValueError(f'recalibrate: BatchNorm statistics {missing[:3]} are not in '
                     "variables['batch_stats'] (model and variables disagree).")
  new = {k: means.get(k, np.asarray(v, np.float32)) for k, v in old.items()}
  return _unflatten(new)


def _unflatten(flat: Mapping[tuple, Any]) -> Dict[str, Any]:
  out: Dict[str, Any] = {}
  for path, leaf in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = leaf
  return out



# ----------------------------------------------------------------------------
# Training runs: config.bn_recalibration.

AUTO_BATCHES = 16  # K for batches=-1 under the clean protocol.
# Offset of the recalibration batches' seed from config.seed: a fixed, separate
# stream, so the training iterator (and resume) is untouched.
_SEED_OFFSET = 7919


def settings(config) -> Dict[str, Any]:
  """{'batches': K (0 = off), 'batch_size': B, 'augment': bool, 'moving_average': rule,
  'model_name': the network (its BatchNorm convention names the statistics)}."""
  bn = config.get('bn_recalibration')
  rule = bn_moving.rule(config)
  if bn is None:
    return {'batches': 0, 'batch_size': int(config.batch_size), 'augment': False,
            'moving_average': rule, 'model_name': config.get('model_name')}
  k = int(bn.batches)
  if k < 0:
    k = AUTO_BATCHES if config.protocol == 'clean' else 0
  return {'batches': k, 'batch_size': int(bn.batch_size or config.batch_size),
          'augment': bool(bn.augment), 'moving_average': rule,
          'model_name': config.get('model_name')}


def moving_average_info(rule: Optional[str],
                        model_name: Optional[str] = None) -> Dict[str, Any]:
  """The 'bn_statistics' record of results scored with the moving averages."""
  info = {'kind': 'moving_average', 'batches': 0, 'moving_average': rule,
          'model_name': model_name}
  return dict(info, description=describe(info))


# Networks whose BatchNorm follows PyTorch (running statistics with momentum 0.1,
# unbiased variance) rather than Keras (momentum 0.99).
PYTORCH_BATCHNORM = {'kgl_net': 'PyTorch BatchNorm running statistics (momentum 0.1)'}


def describe(info: Optional[Mapping[str, Any]]) -> str:
  """One line for reports: which BatchNorm statistics were used."""
  if not info or not info.get('batches'):
    if info and info.get('model_name') in PYTORCH_BATCHNORM:
      return PYTORCH_BATCHNORM[info['model_name']]
    rule = bn_moving.DESCRIPTIONS.get((info or {}).get('moving_average'))
    return f'BatchNorm moving averages (momentum 0.99{", " + rule if rule else ""})'
  aug = 'augmented' if info.get('augment') else 'un-augmented'
  source = f' of split {info["split"]}' if info.get('split') else ''
  return (f'BatchNorm population statistics recalibrated over {info["batches"]} '
          f'{aug} batches of {info.get("batch_size", "?")} pairs{source} '
          '(precise BN)')


def training_batches(patches: np.ndarray, labels: np.ndarray, batch_size: int,
                     seed: int, num_batches: int):
  """The K recalibration batches: a fixed seeded sample of distinct pairs.

  Each process gets its rows of every global batch, as from the train iterator.
  """
  from rrl_jax.data.pipeline import BatchIterator  # pylint: disable=g-import-not-at-top
  n = len(labels)
  if n < batch_size:
    raise ValueError(f'bn_recalibration: {n} pairs cannot fill one batch of '
                     f'{batch_size}.')
  it = BatchIterator(patches, labels, global_batch_size=batch_size,
                     seed=seed + _SEED_OFFSET, mode='epoch',
                     process_index=jax.process_index(),
                     process_count=jax.process_count(), prefetch=0)
  return (next(it) for _ in range(num_batches))


def for_run(model, variables: Mapping[str, Any], train_data, config, mesh: Mesh,
            run_key: Optional[jax.Array] = None) -> Optional[Dict[str, Any]]:
  """Recalibrated batch_stats for a training run, or None when it is off."""
  s = settings(config)
  if not s['batches']:
    return None
  if s['batch_size'] % mesh.size:
    raise ValueError(f'bn_recalibration.batch_size={s["batch_size"]} is not '
                     f'divisible by the {mesh.size} devices of the mesh.')
  batches = training_batches(*train_data, s['batch_size'], int(config.seed),
                             s['batches'])
  return recalibrate(model, variables, batches, mesh,
                     augment_cfg=config.augment if s['augment'] else None,
                     rng=run_key, num_batches=s['batches'])


def replicate(tree, mesh: Mesh):
  """Host numpy tree (identical on every process) -> replicated global arrays."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda idx, x=np.asarray(x): x[idx]), tree)


def evaluate_moving_averages(results: Dict[str, Any], model, variables: Mapping[str, Any],
                             moving_batch_stats: Optional[Any], splits, batch_size: int,
                             mesh: Mesh, info: Mapping[str, Any]) -> Dict[str, Any]:
  """Which statistics `results` used; with recalibrated ones, adds the moving averages'.

  `results` (evaluation.evaluate_splits output, scored with `variables`) gains
  per split and in its mean a 'moving_average' dict of the same metrics scored
  with `moving_batch_stats`. Returns the 'bn_statistics' record of the reports.
  """
  if moving_batch_stats is None:
    return moving_average_info(info.get('moving_average'), info.get('model_name'))
  from rrl_jax.evaluation import scoring as evaluation  # pylint: disable=g-import-not-at-top
  moving = evaluation.evaluate_splits(
      model, dict(variables, batch_stats=moving_batch_stats), splits, batch_size,
      mesh=mesh)
  attach_moving_average(results, moving)
  return dict(info, kind='recalibrated', description=describe(info))


def attach_moving_average(results: Dict[str, Any], moving: Mapping[str, Any]) -> None:
  """results['splits'][s]['moving_average'] = moving's metrics of s (and the mean)."""
  keys = ('fpr95', 'auc', 'accuracy', 'precision', 'recall', 'f1')
  for name, m in moving['splits'].items():
    results['splits'][name]['moving_average'] = {k: m[k] for k in keys}
  results['mean']['moving_average'] = {k: moving['mean'][k] for k in keys}
