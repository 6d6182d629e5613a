"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jitted train step (rrl_jax/training/step.py) with the state donated, data
parallel over the 1-D mesh of rrl_jax/sharding.py. Orbax checkpoints
(rrl_jax/training/checkpoints.py) hold the data iterator position and the run
key, so a restarted run continues exactly where it stopped. The checkpoint with
the best selection FPR95 (README, "Training") is kept in best/ and evaluated
on every test split at the end.
"""
import json
import os
import re
import time
from typing import Any, Dict

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from rrl_jax.data.pipeline import BatchIterator
from rrl_jax.data.splits import load_data
from rrl_jax.evaluation import reports
from rrl_jax.evaluation import scoring
from rrl_jax.sharding import local_mesh, make_mesh
from rrl_jax.training import bn_recalibration
from rrl_jax.training import checkpoints
from rrl_jax.training import losses
from rrl_jax.training import metric_writers
from rrl_jax.training import optim
from rrl_jax.training import preemption
from rrl_jax.training import vgg19
# The run's parts, re-exported: callers use train.<name>.
from rrl_jax.errors import ConfigError, OutOfMemoryError, UserError
from rrl_jax.training.checkpoints import (NoCheckpointError, load_local_moving_batch_stats,
                                          load_local_variables, reconcile_best,
                                          restore_latest, save_checkpoint)
from rrl_jax.training.config_validation import validate_config
from rrl_jax.training.losses import NonFiniteLossError
from rrl_jax.training.step import (TrainState, global_batch, init_state, loss_weights,
                                   lr_schedule, make_model, make_train_step, to_host)
from rrl_jax.training.workdir import (CHECKPOINT_DIR, ConfigMismatchError, check_and_save_config,
                                      check_config, enable_compilation_cache,
                                      run_lock, save_config)

BEST_DIR = 'best'
RESULTS_DIR = 'results'

def mean_selection_fpr95(model, variables, splits, batch_size, mesh,
                         slice_size: int = 0) -> float:
  """Mean FPR95 (%) over the selection splits (validation, or test: 'paper')."""
  return float(np.mean([
      scoring.split_selection_fpr95(model, variables, patches, labels, batch_size,
                                    mesh, slice_size=slice_size or None)
      for patches, labels in splits.values()]))


def selection_description(config) -> str:
  """Which split selected the best checkpoint, in words (summary.json, reports)."""
  ds = config.dataset
  if config.protocol == 'clean':
    return (f'split {ds.val_split}' if ds.val_split
            else 'validation split carved from the training data')
  if ds.paper_selection_split:
    return f'split {ds.paper_selection_split} (as the official code does)'
  return 'test splits (as the official code does)'


def _total_steps(config, steps_per_epoch: int) -> int:
  if config.num_train_steps and config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(config.num_epochs * steps_per_epoch)


def _batch_iterator(config, train_split) -> BatchIterator:
  try:
    return BatchIterator(*train_split, global_batch_size=config.batch_size,
                         seed=config.seed, mode=config.data_mode,
                         process_index=jax.process_index(),
                         process_count=jax.process_count())
  except ValueError as e:  # E.g. fewer training pairs than one batch.
    raise ConfigError(f'config.batch_size={config.batch_size}: {e}.') from None


_ALLOCATION = re.compile(r'allocate ([0-9][0-9.]*\s*[KMGT]?i?B|[0-9]+ bytes)')


def out_of_memory_as_user_error(train_step, config, start: int):
  """The train step, with device out-of-memory as one line naming the batch."""
  steps = [start]  # Steps run so far (the state is donated: not read back).

  def step_fn(state, batch, weights):
    steps[0] += 1
    try:
      state, m = train_step(state, batch, weights)
      return state, jax.block_until_ready(m)  # The loop reads m next anyway.
    except jax.errors.JaxRuntimeError as e:
      if 'RESOURCE_EXHAUSTED' not in str(e):
        raise
      needed = _ALLOCATION.search(str(e))
      size = needed.group(1) if needed else None
      if size and size.endswith(' bytes'):
        size = f'{int(size.split()[0]) / 2**30:.1f} GiB'
      raise OutOfMemoryError(
          f'out of device memory in train step {steps[0]} with '
          f'config.batch_size={config.batch_size} ({jax.device_count()} device(s)'
          + (f'; one allocation asked for {size}' if size else '')
          + '): lower config.batch_size (e.g. --config.batch_size='
          f'{max(jax.device_count(), config.batch_size // 4)}).') from None
  return step_fn


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False,
                       restart_from_scratch: bool = False,
                       return_variables: bool = False) -> Dict[str, Any]:
  """Trains (resuming from workdir if it has checkpoints), then evaluates.

  The config is validated and the workdir locked before anything is written
  to it. Returns a summary dict (with this process's final numpy 'variables'
  if return_variables); results are written to workdir/results.
  """
  validate_config(config, device_count=jax.device_count())
  workdir = os.path.abspath(os.path.expanduser(workdir))
  check_config(config, workdir, allow_config_change)  # Reads only.
  with run_lock(workdir):
    try:
      return _train_and_evaluate(config, workdir, restart_from_scratch,
                                 return_variables)
    except checkpoints.DiskFullError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if not checkpoints.is_disk_full(e):
        raise
      where = getattr(e, 'filename', None) or workdir
      raise checkpoints.DiskFullError(
          f'disk full while writing {where} (free: {checkpoints.free_space(workdir)}'
          f'); the run stopped there. Last good checkpoint: '
          f'{checkpoints.last_good_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))}'
          '. Free space and rerun the same command to resume.') from None


def _train_and_evaluate(config, workdir, restart_from_scratch, return_variables):
  """The run itself, with a valid config and the workdir locked."""
  # VGG19 first: a missing/malformed file fails before anything compiles.
  vgg_params = None
  if config.recon_loss == 'perceptual':
    vgg_params = vgg19.load_vgg19_params(os.path.expanduser(config.vgg19_weights))
  enable_compilation_cache(config.compilation_cache_dir)
  is_main = jax.process_index() == 0

  datasets = load_data(config)
  mesh = make_mesh(config.num_devices)
  emesh = local_mesh(mesh)
  if config.batch_size % mesh.size:
    raise ValueError(f'batch_size={config.batch_size} is not divisible by the '
                     f'{mesh.size} devices of the mesh.')
  it = _batch_iterator(config, datasets['train'])
  save_config(config, workdir)  # Data loaded: the run can start.
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
  mngr, state, train_meta = restore_latest(ckpt_dir, state, config.keep, workdir,
                                           restart_from_scratch)
  best = {'fpr95': None, 'step': None}
  start = 0
  if train_meta is not None:
    start = int(train_meta['step'])
    try:
      it.set_state(train_meta['data'])
    except (ValueError, KeyError, TypeError) as e:
      raise ConfigError(f'{ckpt_dir}: cannot resume the data stream saved at step '
                        f'{start}: {e}; run on the data it was trained with, or pass '
                        '--restart_from_scratch.') from None
    best = dict(train_meta.get('best', best))
    logging.info('Resumed from %s/%d.', ckpt_dir, start)
    if is_main:
      print(f'Resumed from checkpoint step {start} in {ckpt_dir}.', flush=True)
  best_mngr = checkpoints.best_manager(os.path.join(workdir, BEST_DIR))
  best = reconcile_best(best_mngr, best, start)

  train_step = make_train_step(model, tx, config, mesh, run_key, recon_loss,
                               lr_schedule(config, total_steps))
  weights = loss_weights(config, mesh)
  writer = metric_writers.MetricWriter(workdir, enabled=is_main)
  log_window = metric_writers.LogWindow(config.batch_size, steps_per_epoch)
  bar = tqdm.tqdm(total=total_steps, initial=start, disable=not is_main,
                  desc='train', dynamic_ncols=True)

  def variables_host():
    return {'params': to_host(state.params), 'batch_stats': to_host(state.batch_stats)}

  def train_meta_now(step):
    return {'step': int(step), 'data': it.get_state(), 'best': best,
            'rng': {'seed': int(config.seed),
                    'key_data': np.asarray(jax.random.key_data(run_key)).tolist()},
            'protocol': config.protocol}

  def evaluate_and_select(step):
    # Precise BN (off: None): the selection scores, and best/ holds, recalibrated
    # statistics; the moving averages in `state` train on untouched.
    variables = variables_host()
    recal = bn_recalibration.for_run(model, variables, datasets['train'], config,
                                     mesh, run_key)
    if recal is not None:
      variables = dict(variables, batch_stats=recal)
    fpr = mean_selection_fpr95(model, variables, datasets['select'],
                               config.eval_batch_size, emesh,
                               config.dataset.selection_slice_size)
    if best['fpr95'] is None or fpr < best['fpr95']:
      best.update(fpr95=fpr, step=int(step))
      checkpoints.save_best(best_mngr, step, state, recal, mesh, config, fpr)
    writer.write(step, {'selection_fpr95': fpr, 'best_fpr95': best['fpr95']},
                 kind='eval')
    bar.write(f'step {step}: {config.protocol}-protocol selection FPR95 '
              f'{fpr:.3f} (best {best["fpr95"]:.3f} at step {best["step"]})')

  saved = [start if train_meta is not None else None]  # The newest checkpoint.

  def save(step):
    save_checkpoint(mngr, state, train_meta_now(step), config, workdir)
    saved[0] = step

  train_step = out_of_memory_as_user_error(train_step, config, start)
  stop = preemption.StopSignals().install()  # SIGTERM/SIGINT: stop after a step.
  try:
    step = start
    while step < total_steps and not stop.should_stop(step):
      batch = global_batch(next(it), mesh)
      t0 = time.time()
      state, m = train_step(state, batch, weights)
      m = {k: float(v) for k, v in to_host(m).items()}
      dt = time.time() - t0
      losses.check_finite(m, config.loss_weights, step + 1,
                          lambda: checkpoints.last_checkpoint(mngr, ckpt_dir))
      step += 1
      bar.update(1)
      log_window.add(m, dt)
      if step % config.log_every == 0 or step == total_steps:
        avg = log_window.summary(step)
        writer.write(step, avg, kind='train')
        bar.set_postfix(loss=f'{avg["total"]:.4f}', acc=f'{avg["accuracy"]:.3f}')
      if (eval_every > 0 and step % eval_every == 0) or step == total_steps:
        evaluate_and_select(step)
      if step % config.checkpoint_every == 0 or step == total_steps:
        save(step)
    if stop.stopped or stop.should_stop(step, force=True):
      if saved[0] != step:
        save(step)
      raise preemption.Preempted(step, stop.signum)
    if start >= total_steps and best['step'] is None:
      evaluate_and_select(start)
  finally:
    stop.restore()
    bar.close()
    if hasattr(it, 'close'):
      it.close()
    mngr.wait_until_finished()
    best_mngr.wait_until_finished()
    mngr.close()
    best_mngr.close()
    writer.close()

  summary = evaluate_best(model, state, datasets['test'], config, workdir, emesh,
                          best, final_step=int(step), write=is_main)
  if return_variables:
    summary['variables'] = variables_host()
  if jax.process_count() > 1:  # Everyone leaves once the reports are written.
    multihost_utils.sync_global_devices('rrl_jax_train_and_evaluate_done')
  return summary


def evaluate_best(model, like: TrainState, tests, config, workdir: str, mesh,
                  best: Dict[str, Any], final_step: int, write: bool) -> Dict[str, Any]:
  """Scores best/ on every test split; writes results/ and summary.json if `write`."""
  best_dir = os.path.join(workdir, BEST_DIR)
  best_vars = load_local_variables(best_dir, like)
  results = scoring.evaluate_splits(
      model, best_vars, tests, config.eval_batch_size, mesh=mesh,
      dataset=config.dataset.name, return_scores=True)
  scores = results.pop('scores')
  bn_info = bn_recalibration.evaluate_moving_averages(
      results, model, best_vars, load_local_moving_batch_stats(best_dir, like), tests,
      config.eval_batch_size, mesh, bn_recalibration.settings(config))
  summary = {'workdir': workdir, 'protocol': config.protocol,
             'selection': selection_description(config),
             'selected_step': best['step'], 'selection_fpr95': best['fpr95'],
             'final_step': final_step, 'dataset': config.dataset.name,
             'bn_statistics': bn_info, 'results': results}
  outdir = os.path.join(workdir, RESULTS_DIR)
  if write:
    reports.write_reports(
        outdir, dict(results, scores=scores), tests,
        dataset=config.dataset.name, protocol=config.protocol, checkpoint=best_dir,
        model_name=config.model_name,
        sample_size=int(config.dataset.get('test_max_pairs', 0) or 0),
        extra={'selection': summary['selection'],
               'selected_step': best['step'],
               'selection_fpr95': best['fpr95'], 'final_step': final_step,
               'bn_statistics': bn_info})
    with open(os.path.join(outdir, 'summary.json'), 'w') as f:
      json.dump(summary, f, indent=2, default=str)
    print(f'Training done ({final_step} steps, {config.protocol} protocol, selected '
          f'step {best["step"]}).', flush=True)
    print(reports.console_summary(outdir), flush=True)
  return summary
