"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jitted train step (augmentation, forward, named weighted losses, gradients,
optax update, BatchNorm statistics, metrics) with the state donated. Data
parallelism is jax.jit over a Mesh with a 'data' axis: the global batch is
sharded over every device of every process, the state is replicated, and XLA
inserts the gradient all-reduce (the successor of pmap). Orbax checkpoints hold
the data iterator position and the run key, so a restarted run continues
exactly where it stopped.
"""
import json
import math
import os
import shutil
import signal
import time
from typing import Any, Dict, Optional, Tuple

from absl import logging
import flax.struct
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from rrl_jax import augment
from rrl_jax import checkpoint as ckpt_lib
from rrl_jax import data as data_lib
from rrl_jax import evaluation
from rrl_jax import losses
from rrl_jax import metric_writers
from rrl_jax import optim
from rrl_jax import reports
from rrl_jax import vgg19
from rrl_jax.data.pipeline import BatchIterator
from rrl_jax.models import get_model

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
BEST_DIR = 'best'
RESULTS_DIR = 'results'
# Fields that only change how long / how verbosely a run goes: a restart may
# change them without --allow_config_change (e.g. to extend training).
RUN_LENGTH_KEYS = ('num_train_steps', 'num_epochs', 'eval_every', 'log_every',
                   'checkpoint_every', 'keep', 'eval_batch_size',
                   'compilation_cache_dir')
# Fault injection for the kill-and-resume test: SIGKILL this process right
# after the given step (no clean-up, possibly mid checkpoint write).
KILL_ENV = 'RRL_JAX_FAULT_KILL_AT_STEP'


class ConfigMismatchError(ValueError):
  """The workdir holds a run with a different configuration."""


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN/Inf; the run stopped without saving."""


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


# ----------------------------------------------------------------------------
# Configuration, workdir, compilation cache.


def config_to_dict(config: ml_collections.ConfigDict) -> Dict[str, Any]:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def _flatten(d: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def check_and_save_config(config, workdir: str, allow_change: bool) -> None:
  """Saves the resolved config; refuses a workdir holding a different run."""
  new = config_to_dict(config)
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    a, b = _flatten(old), _flatten(new)
    diff = sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k not in RUN_LENGTH_KEYS)
    if diff and not allow_change:
      lines = '\n'.join(f'  {k}: {a.get(k)!r} -> {b.get(k)!r}' for k in diff)
      raise ConfigMismatchError(
          f'{workdir} holds a run with a different config:\n{lines}\n'
          'Use a new --workdir, or pass --allow_config_change to continue this '
          'run with the new config.')
    if diff:
      logging.warning('Config changed in %s (allowed): %s', workdir, diff)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)


def enable_compilation_cache(path: str) -> None:
  """Turns on JAX's persistent compilation cache ('' or 'none': off)."""
  if not path or path.lower() == 'none':
    return
  path = os.path.abspath(os.path.expanduser(path))
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def validate_config(config) -> None:
  if config.protocol not in ('clean', 'paper'):
    raise ValueError(f"config.protocol must be 'clean' or 'paper', got "
                     f'{config.protocol!r}.')
  if config.recon_loss not in ('perceptual', 'mse'):
    raise ValueError(f"config.recon_loss must be 'perceptual' or 'mse', got "
                     f'{config.recon_loss!r}.')
  if config.dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got "
                     f'{config.dtype!r}.')


# ----------------------------------------------------------------------------
# Data.


def _toy_split(num_pairs: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """A tiny learnable in-memory dataset for tests (dataset.name='toy')."""
  rng = np.random.default_rng(seed)
  # Full-resolution noise: no exact ties for max-pooling to break differently
  # on different device counts.
  a = rng.integers(0, 256, (num_pairs, 64, 64), dtype=np.uint8)
  labels = (np.arange(num_pairs) % 2).astype(np.int32)
  b = np.where(labels[:, None, None] == 1, 255 - a, 255 - np.roll(a, 1, 0))
  return np.stack([a, b], 1).astype(np.uint8), labels


def load_data(config) -> Dict[str, Any]:
  """Returns {'train': (p, l), 'select': {name: (p, l)}, 'test': {...}}."""
  ds = config.dataset
  kw = dict(ds.builder_kwargs.to_dict()) if ds.get('builder_kwargs') else {}

  def load(split):
    if ds.name == 'toy':
      return _toy_split(int(kw.get('num_pairs', 64)),
                        {'train': 0, 'val': 1}.get(split, 2))
    return data_lib.load_split(ds.name, split, data_dir=ds.data_dir or None,
                               manual_dir=ds.manual_dir or None, **kw)

  train = load(ds.train_split)
  tests = {s: load(s) for s in ds.test_splits}
  if config.protocol == 'paper':
    sel = ds.paper_selection_split
    select = {sel: tests[sel] if sel in tests else load(sel)} if sel else tests
  elif ds.val_split:
    select = {ds.val_split: load(ds.val_split)}
  else:
    n = len(train[1])
    n_val = int(round(ds.val_fraction * n))
    if ds.val_max_pairs > 0:
      n_val = min(n_val, ds.val_max_pairs)
    if not 0 < n_val < n:
      raise ValueError(f'dataset.val_fraction={ds.val_fraction} carves {n_val} '
                       f'of {n} training pairs; need 0 < n_val < {n}.')
    perm = np.random.default_rng(config.seed + 12345).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    select = {'val': (train[0][val_idx], train[1][val_idx])}
    train = (train[0][train_idx], train[1][train_idx])
  return {'train': train, 'select': select, 'test': tests}


# ----------------------------------------------------------------------------
# Model, optimizer, the step.


def make_model(config):
  kw = config.model.to_dict()
  kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
  if config.dtype == 'bfloat16':
    kw['dtype'] = jnp.bfloat16
  return get_model(config.model_name, **kw)


def make_mesh(num_devices: int = -1) -> Mesh:
  devices = jax.devices()
  if num_devices and num_devices > 0:
    if jax.process_count() > 1:
      raise ValueError('config.num_devices only applies to single-process runs.')
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), ('data',))


def _schedule(config, total_steps):
  return optim.make_schedule(config.optimizer, total_steps=total_steps)


def init_state(model, tx, config, mesh) -> TrainState:
  """Initialises parameters (float32) and optimizer state, replicated."""
  p = model.patch_size

  def init(key):
    x = jnp.zeros((2, p, p, 1), jnp.float32)
    variables = model.init(key, x, x, train=True)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=tx.init(params))

  key = jax.random.key(config.seed)
  return jax.jit(init, out_shardings=NamedSharding(mesh, P()))(key)


def make_train_step(model, tx, config, mesh, run_key, recon_loss, lr_fn):
  """Returns the jitted, state-donating step(state, batch, weights).

  `weights` ({term: float32 scalar}) is an argument, not a constant, so
  changing loss weights does not recompile.
  """
  aug_cfg = config.augment
  score_name = f'stage{model.score_stage}'

  def step_fn(state: TrainState, batch, weights):
    xa = batch['xa'].astype(jnp.float32) / 255.0
    xb = batch['xb'].astype(jnp.float32) / 255.0
    labels = batch['label']
    if aug_cfg.enabled:
      xa, xb = augment.augment_pairs(run_key, state.step, xa, xb, aug_cfg)

    def loss_fn(params):
      outputs, new_vars = model.apply(
          {'params': params, 'batch_stats': state.batch_stats}, xa, xb,
          train=True, mutable=['batch_stats'])
      outputs = {k: v.astype(jnp.float32) for k, v in outputs.items()}
      terms = losses.loss_terms(outputs, labels, xa, xb, recon_loss)
      missing = sorted(set(terms) - set(weights))
      if missing:
        raise ValueError(f'config.loss_weights lacks {missing}.')
      total = losses.weighted_total(terms, weights)
      return total, (terms, new_vars['batch_stats'], outputs[score_name])

    (total, (terms, batch_stats, logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    pred = logits.reshape(-1) > 0
    metrics = dict(terms)
    metrics.update(total=total,
                   accuracy=jnp.mean((pred == (labels == 1)).astype(jnp.float32)),
                   grad_norm=optax.tree.norm(grads),
                   lr=jnp.asarray(lr_fn(state.step), jnp.float32))
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics

  repl = NamedSharding(mesh, P())
  data = NamedSharding(mesh, P('data'))
  return jax.jit(step_fn, donate_argnums=0, in_shardings=(repl, data, repl),
                 out_shardings=(repl, repl))


def loss_weights(config, mesh) -> Dict[str, jax.Array]:
  sharding = NamedSharding(mesh, P())
  return {k: jax.make_array_from_callback((), sharding,
                                          lambda _, v=v: np.float32(v))
          for k, v in config.loss_weights.items()}


def global_batch(batch: Dict[str, np.ndarray], mesh: Mesh) -> Dict[str, jax.Array]:
  """This process's rows -> one global array per key, sharded on 'data'."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def to_host(tree):
  """Replicated global arrays -> numpy (works on every process)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))
                      if isinstance(x, jax.Array) else np.asarray(x), tree)


# ----------------------------------------------------------------------------
# Checkpoints.


def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _meta(config) -> Dict[str, Any]:
  return {'format': ckpt_lib.FORMAT, 'model_name': config.model_name,
          'model': config_to_dict(config.model), 'dtype': config.dtype,
          'inference_only': False, 'source': 'rrl_jax.train'}


def save_checkpoint(mngr, state: TrainState, train_meta, config) -> None:
  step = int(train_meta['step'])
  mngr.save(step, args=ocp.args.Composite(**{
      ckpt_lib.PARAMS: ocp.args.StandardSave(state.params),
      ckpt_lib.BATCH_STATS: ocp.args.StandardSave(state.batch_stats),
      ckpt_lib.META: ocp.args.JsonSave(_meta(config)),
      ckpt_lib.OPT_STATE: ocp.args.StandardSave(state.opt_state),
      ckpt_lib.TRAIN_STATE: ocp.args.JsonSave(train_meta)}))


def restore_latest(ckpt_dir: str, state: TrainState, keep: int, workdir: str):
  """Restores the newest readable checkpoint, moving unreadable ones aside.

  Returns (manager, state, train_meta or None).
  """
  while True:
    mngr = ckpt_lib.manager(ckpt_dir, max_to_keep=keep)
    steps = sorted(mngr.all_steps())
    if not steps:
      return mngr, state, None
    step = steps[-1]
    try:
      r = mngr.restore(step, args=ocp.args.Composite(**{
          ckpt_lib.PARAMS: ocp.args.StandardRestore(_abstract(state.params)),
          ckpt_lib.BATCH_STATS: ocp.args.StandardRestore(_abstract(state.batch_stats)),
          ckpt_lib.OPT_STATE: ocp.args.StandardRestore(_abstract(state.opt_state)),
          ckpt_lib.TRAIN_STATE: ocp.args.JsonRestore()}))
      meta = dict(r[ckpt_lib.TRAIN_STATE])
      if int(meta['step']) != step:
        raise ValueError(f'train_state says step {meta["step"]}')
    except Exception as e:  # pylint: disable=broad-except
      bad = os.path.join(ckpt_dir, str(step))
      aside = os.path.join(workdir, 'unreadable_checkpoints', f'{step}_{int(time.time())}')
      msg = (f'Checkpoint {bad} is unreadable ({type(e).__name__}: '
             f'{str(e)[:300]}); moved to {aside}; using the previous one.')
      logging.warning(msg)
      print(f'WARNING: {msg}', flush=True)
      mngr.close()
      if jax.process_index() == 0:
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.move(bad, aside)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f'rrl_jax_ckpt_aside_{step}')
      continue
    state = state.replace(step=jnp.asarray(step, jnp.int32),
                          params=r[ckpt_lib.PARAMS],
                          batch_stats=r[ckpt_lib.BATCH_STATS],
                          opt_state=r[ckpt_lib.OPT_STATE])
    return mngr, state, meta


def load_local_variables(directory: str, like: TrainState,
                         step: Optional[int] = None) -> Dict[str, Any]:
  """Restores params + batch_stats as numpy on this process (any process count)."""
  target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype),
                        {'params': like.params, 'batch_stats': like.batch_stats})
  mngr = ckpt_lib.manager(directory)
  step = mngr.latest_step() if step is None else step
  r = mngr.restore(step, args=ocp.args.Composite(**{
      ckpt_lib.PARAMS: ocp.args.StandardRestore(target['params']),
      ckpt_lib.BATCH_STATS: ocp.args.StandardRestore(target['batch_stats'])}))
  mngr.close()
  return {'params': to_host(r[ckpt_lib.PARAMS]),
          'batch_stats': to_host(r[ckpt_lib.BATCH_STATS])}


# ----------------------------------------------------------------------------
# Evaluation.


def eval_mesh(train_mesh: Mesh) -> Mesh:
  """Evaluation runs on this process's devices (every process scores all)."""
  local = [d for d in train_mesh.devices.flat if d.process_index == jax.process_index()]
  return Mesh(np.asarray(local), ('data',))


def selection_fpr95(model, variables, splits, batch_size, mesh,
                    slice_size: int = 0) -> float:
  """Mean FPR95 (%) over the selection splits (validation, or test: 'paper')."""
  return float(np.mean([
      evaluation.selection_fpr95(model, variables, patches, labels, batch_size,
                                 mesh, slice_size=slice_size or None)
      for patches, labels in splits.values()]))


# ----------------------------------------------------------------------------
# The run.


def _total_steps(config, steps_per_epoch: int) -> int:
  if config.num_train_steps and config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(config.num_epochs * steps_per_epoch)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False,
                       return_variables: bool = False) -> Dict[str, Any]:
  """Trains (resuming from workdir if it has checkpoints), then evaluates.

  Returns a summary dict (with this process's final numpy 'variables' if
  return_variables); results are written to workdir/results.
  """
  validate_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  # VGG19 first: a missing/malformed file fails before anything compiles.
  vgg_params = None
  if config.recon_loss == 'perceptual':
    vgg_params = vgg19.load_vgg19_params(os.path.expanduser(config.vgg19_weights))
  enable_compilation_cache(config.compilation_cache_dir)
  check_and_save_config(config, workdir, allow_config_change)
  is_main = jax.process_index() == 0

  datasets = load_data(config)
  mesh = make_mesh(config.num_devices)
  emesh = eval_mesh(mesh)
  if config.batch_size % mesh.size:
    raise ValueError(f'batch_size={config.batch_size} is not divisible by the '
                     f'{mesh.size} devices of the mesh.')
  it = BatchIterator(*datasets['train'], global_batch_size=config.batch_size,
                     seed=config.seed, mode=config.data_mode,
                     process_index=jax.process_index(),
                     process_count=jax.process_count())
  steps_per_epoch = int(it.steps_per_epoch)
  total_steps = _total_steps(config, steps_per_epoch)
  eval_every = steps_per_epoch if config.eval_every < 0 else int(config.eval_every)

  model = make_model(config)
  tx = optim.make_optimizer(config.optimizer, total_steps=total_steps)
  recon_loss = losses.make_recon_loss(config.recon_loss, vgg_params=vgg_params,
                                      pixel_weight=config.pixel_weight)
  run_key = jax.random.key(config.seed)
  state = init_state(model, tx, config, mesh)

  ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
  mngr, state, train_meta = restore_latest(ckpt_dir, state, config.keep, workdir)
  best = {'fpr95': None, 'step': None}
  start = 0
  if train_meta is not None:
    start = int(train_meta['step'])
    it.set_state(train_meta['data'])
    best = dict(train_meta.get('best', best))
    logging.info('Resumed from %s/%d.', ckpt_dir, start)
    if is_main:
      print(f'Resumed from checkpoint step {start} in {ckpt_dir}.', flush=True)
  best_mngr = ckpt_lib.manager(os.path.join(workdir, BEST_DIR), max_to_keep=1)
  # A best checkpoint newer than the resumed step belongs to a discarded future
  # (the run died after it); the resumed run re-evaluates those steps.
  for s in list(best_mngr.all_steps()):
    if s > start or best['step'] is None:
      best_mngr.delete(s)

  train_step = make_train_step(model, tx, config, mesh, run_key, recon_loss,
                               _schedule(config, total_steps))
  weights = loss_weights(config, mesh)
  writer = metric_writers.MetricWriter(workdir, enabled=is_main)
  kill_at = int(os.environ.get(KILL_ENV, '0') or 0)
  bar = tqdm.tqdm(total=total_steps, initial=start, disable=not is_main,
                  desc='train', dynamic_ncols=True)
  window, t_window = [], time.time()

  def variables_host():
    return {'params': to_host(state.params), 'batch_stats': to_host(state.batch_stats)}

  def train_meta_now(step):
    return {'step': int(step), 'data': it.get_state(), 'best': best,
            'rng': {'seed': int(config.seed),
                    'key_data': np.asarray(jax.random.key_data(run_key)).tolist()},
            'protocol': config.protocol}

  def evaluate_and_select(step):
    fpr = selection_fpr95(model, variables_host(), datasets['select'],
                          config.eval_batch_size, emesh,
                          config.dataset.selection_slice_size)
    improved = best['fpr95'] is None or fpr < best['fpr95']
    if improved:
      best.update(fpr95=fpr, step=int(step))
      best_mngr.save(step, args=ocp.args.Composite(**{
          ckpt_lib.PARAMS: ocp.args.StandardSave(state.params),
          ckpt_lib.BATCH_STATS: ocp.args.StandardSave(state.batch_stats),
          ckpt_lib.META: ocp.args.JsonSave(_meta(config)),
          ckpt_lib.TRAIN_STATE: ocp.args.JsonSave(
              {'step': int(step), 'selection_fpr95': fpr,
               'protocol': config.protocol})}), force=True)
    writer.write(step, {'selection_fpr95': fpr, 'best_fpr95': best['fpr95']},
                 kind='eval')
    bar.write(f'step {step}: {config.protocol}-protocol selection FPR95 '
              f'{fpr:.3f} (best {best["fpr95"]:.3f} at step {best["step"]})')

  try:
    step = start
    while step < total_steps:
      batch = global_batch(next(it), mesh)
      t0 = time.time()
      state, m = train_step(state, batch, weights)
      m = {k: float(v) for k, v in to_host(m).items()}
      dt = time.time() - t0
      bad = sorted(k for k, v in m.items() if not math.isfinite(v)
                   and k not in ('lr',))
      weighted_bad = sorted(
          k for k in config.loss_weights.keys()
          if k in m and not math.isfinite(float(config.loss_weights[k]) * m[k]))
      if bad or weighted_bad:
        mngr.wait_until_finished()
        latest = mngr.latest_step()
        offending = sorted(set(bad + weighted_bad) - {'total', 'grad_norm'}) or bad
        values = {k: m.get(k) for k in sorted(set(bad + weighted_bad))}
        raise NonFiniteLossError(
            f'Non-finite loss at step {step + 1}: offending terms {offending} '
            f'(values {values}; weights '
            f'{ {k: config.loss_weights[k] for k in offending if k in config.loss_weights} }). '
            f'Stopped without saving; last good checkpoint: '
            f'{f"{ckpt_dir}/{latest}" if latest is not None else "none"}.')
      step += 1
      bar.update(1)
      window.append((m, dt))
      if step % config.log_every == 0 or step == total_steps:
        wall = time.time() - t_window
        avg = {k: float(np.mean([w[0][k] for w in window])) for k in m}
        avg['lr'] = m['lr']
        avg['step_time'] = float(np.mean([w[1] for w in window]))
        avg['pairs_per_sec'] = config.batch_size * len(window) / max(wall, 1e-9)
        avg['epoch'] = step / steps_per_epoch
        writer.write(step, avg, kind='train')
        bar.set_postfix(loss=f'{avg["total"]:.4f}', acc=f'{avg["accuracy"]:.3f}')
        window, t_window = [], time.time()
      if (eval_every > 0 and step % eval_every == 0) or step == total_steps:
        evaluate_and_select(step)
      if step % config.checkpoint_every == 0 or step == total_steps:
        save_checkpoint(mngr, state, train_meta_now(step), config)
      if kill_at and step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    if start >= total_steps and best['step'] is None:
      evaluate_and_select(start)
  finally:
    bar.close()
    if hasattr(it, 'close'):
      it.close()
    mngr.wait_until_finished()
    best_mngr.wait_until_finished()
    mngr.close()
    best_mngr.close()
    writer.close()

  # Final evaluation of the selected checkpoint on every test split.
  best_vars = load_local_variables(os.path.join(workdir, BEST_DIR), state)
  results = evaluation.evaluate_splits(
      model, best_vars, datasets['test'], config.eval_batch_size, mesh=emesh,
      dataset=config.dataset.name, return_scores=True)
  scores = results.pop('scores')
  summary = {'workdir': workdir, 'protocol': config.protocol,
             'selection': ('validation split carved from the training data'
                           if config.protocol == 'clean' and not config.dataset.val_split
                           else f'split {config.dataset.val_split}'
                           if config.protocol == 'clean'
                           else f'split {config.dataset.paper_selection_split} '
                           '(as the official code does)'
                           if config.dataset.paper_selection_split
                           else 'test splits (as the official code does)'),
             'selected_step': best['step'], 'selection_fpr95': best['fpr95'],
             'final_step': int(step), 'dataset': config.dataset.name,
             'results': results}
  outdir = os.path.join(workdir, RESULTS_DIR)
  if is_main:
    reports.write_reports(
        outdir, dict(results, scores=scores), datasets['test'],
        dataset=config.dataset.name, protocol=config.protocol,
        checkpoint=os.path.join(workdir, BEST_DIR),
        extra={'selection': summary['selection'],
               'selected_step': best['step'],
               'selection_fpr95': best['fpr95'], 'final_step': int(step)})
    with open(os.path.join(outdir, 'summary.json'), 'w') as f:
      json.dump(summary, f, indent=2, default=str)
    print(f'Training done ({step} steps, {config.protocol} protocol, selected step '
          f'{best["step"]}). Results: {outdir}', flush=True)
  if return_variables:
    summary['variables'] = variables_host()
  if jax.process_count() > 1:  # Everyone leaves once the reports are written.
    multihost_utils.sync_global_devices('rrl_jax_train_and_evaluate_done')
  return summary
