"""Training checkpoints: resume, best/ and the run's metadata.

Built on the one checkpoint format (rrl_jax/checkpoint_format.py): training
adds the opt_state and train_state items. Unreadable latest checkpoints are
moved aside and the previous one is used; starting over in a workdir that holds
a previous run needs restart_from_scratch (README, "Training").
"""

import errno
import json
import os
import shutil
import time
from typing import Any, Dict, List, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from rrl_jax.checkpoint_format import (
    BATCH_STATS, FORMAT, META, MOVING_BATCH_STATS, OPT_STATE, PARAMS, TRAIN_STATE,
    manager, restore_args, save_args)
from rrl_jax import logs
from rrl_jax.errors import UserError
from rrl_jax.training.metric_writers import METRICS_FILE, TENSORBOARD_DIR
from rrl_jax.training.step import TrainState, to_host
from rrl_jax.training.workdir import config_to_dict

UNREADABLE_DIR = 'unreadable_checkpoints'
PREVIOUS_DIR = 'previous_runs'  # restart_from_scratch moves a run's files here.
HISTORY_DIRS = (TENSORBOARD_DIR, 'best', 'results')


class NoCheckpointError(UserError):
  """A workdir holds a previous run but no usable checkpoint."""


def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def checkpoint_meta(config) -> Dict[str, Any]:
  return {'format': FORMAT, 'model_name': config.model_name,
          'model': config_to_dict(config.model), 'dtype': config.dtype,
          'inference_only': False, 'source': 'rrl_jax.training.train'}


class DiskFullError(UserError, OSError):
  """The run's filesystem is full (a checkpoint, log or result not written)."""


def is_disk_full(e: BaseException) -> bool:
  """Whether `e` or an exception it wraps is ENOSPC (Orbax/TensorStore wrap it)."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(e):
      return True
    e = e.__cause__ or e.__context__
  return False


def free_space(path: str) -> str:
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    free = shutil.disk_usage(path).free
  except OSError:
    return 'unknown'
  return f'{free / 2**20:,.1f} MiB'


def _drop_partial(directory: str, step: int) -> None:
  """Removes the temporary directories an interrupted save of `step` left."""
  for name in os.listdir(directory) if os.path.isdir(directory) else ():
    if name.startswith(f'{step}.') and 'tmp' in name:
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _settle(mngr, attempts: int = 20) -> None:
  """Waits until a failed save's background work has ended (errors ignored)."""
  for _ in range(attempts):
    try:
      with logs.silenced():
        mngr.wait_until_finished()
      return
    except Exception:  # pylint: disable=broad-except
      time.sleep(0.1)


def last_good_checkpoint(ckpt_dir: str) -> str:
  """'DIR/STEP' of the newest complete training checkpoint, for messages."""
  steps = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit() and os.path.isdir(
      os.path.join(ckpt_dir, n, TRAIN_STATE))] if os.path.isdir(ckpt_dir) else []
  return (f'{ckpt_dir}/{max(steps)}' if steps
          else 'none yet (the rerun starts at step 0)')


def save_checkpoint(mngr, state: TrainState, train_meta, config,
                    workdir: Optional[str] = None) -> None:
  """Saves a training checkpoint and waits until it is on disk.

  Waiting makes a failed save stop the run at that step: a full disk raises
  DiskFullError (one line: the directory, the free space, the last good
  checkpoint), after removing the partial files.
  """
  step = int(train_meta['step'])
  logs.drop_abandoned_restore_noise()
  try:
    with logs.silenced():
      mngr.save(step, args=save_args({
          PARAMS: state.params, BATCH_STATS: state.batch_stats,
          META: checkpoint_meta(config), OPT_STATE: state.opt_state,
          TRAIN_STATE: train_meta}))
      mngr.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    if not is_disk_full(e):
      raise
    directory = str(mngr.directory)
    logs.abandon(os.path.join(directory, f'{step}.'))
    _settle(mngr)  # Its other writers stop before the partial files go.
    _drop_partial(directory, step)
    last = last_good_checkpoint(directory)
    raise DiskFullError(
        f'disk full while saving checkpoint step {step} in {directory} '
        f'(free: {free_space(directory)}); training stopped at step {step}. '
        f'Last good checkpoint: {last}. Free space on '
        f'{workdir or directory} and rerun the same command to resume.') from None


def _first_line(e: BaseException, limit: int = 160) -> str:
  text = (str(e).strip().splitlines() or [''])[0]
  return f'{type(e).__name__}: {text[:limit]}'


def restore_latest(ckpt_dir: str, state: TrainState, keep: int, workdir: str,
                   restart_from_scratch: bool = False):
  """Restores the newest readable checkpoint, moving unreadable ones aside.

  Each unreadable checkpoint is reported in one line. With none usable in a
  workdir that holds a previous run, refuses (NoCheckpointError) unless
  restart_from_scratch, which moves that run's files aside first.
  Returns (manager, state, train_meta or None).
  """
  moved = []
  existed = os.path.isdir(ckpt_dir)
  logs.drop_abandoned_restore_noise()
  with logs.silenced():  # Its errors on a bad checkpoint: our one line instead.
    mngr = manager(ckpt_dir, max_to_keep=keep)
  while True:
    steps = sorted(mngr.all_steps())
    if not steps:
      break
    step = steps[-1]
    try:
      with logs.silenced():
        r = mngr.restore(step, args=restore_args({
            PARAMS: _abstract(state.params),
            BATCH_STATS: _abstract(state.batch_stats),
            OPT_STATE: _abstract(state.opt_state), TRAIN_STATE: None}))
      meta = dict(r[TRAIN_STATE])
      if int(meta['step']) != step:
        raise ValueError(f'train_state says step {meta["step"]}')
    except Exception as e:  # pylint: disable=broad-except
      mngr.close()
      bad = os.path.join(ckpt_dir, str(step))
      logs.abandon(bad + os.sep)
      aside = os.path.join(workdir, UNREADABLE_DIR, f'{step}_{int(time.time())}')
      then = (f'trying step {steps[-2]}.' if len(steps) > 1
              else 'no earlier checkpoint is left.')
      msg = f'checkpoint {bad} is unreadable ({_first_line(e)}); moved to {aside}; {then}'
      logging.info(msg)
      if jax.process_index() == 0:
        print(f'WARNING: {msg}', flush=True)
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.move(bad, aside)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f'rrl_jax_ckpt_aside_{step}')
      moved.append(aside)
      with logs.silenced():
        mngr = manager(ckpt_dir, max_to_keep=keep)
      continue
    state = state.replace(step=jnp.asarray(step, jnp.int32),
                          params=r[PARAMS],
                          batch_stats=r[BATCH_STATS],
                          opt_state=r[OPT_STATE])
    return mngr, state, meta
  try:
    _start_from_scratch(workdir, ckpt_dir, moved, restart_from_scratch, existed)
  except BaseException:
    mngr.close()
    raise
  return mngr, state, None


def previous_run(workdir: str) -> List[str]:
  """What a previous run left in workdir (metrics, best, results), described."""
  found = []
  metrics = os.path.join(workdir, METRICS_FILE)
  if os.path.isfile(metrics) and os.path.getsize(metrics):
    steps = []
    with open(metrics, errors='replace') as f:
      for line in f:
        try:
          steps.append(int(json.loads(line)['step']))
        except (ValueError, KeyError, TypeError):
          pass
    found.append(f'{METRICS_FILE} with {len(steps)} records up to step '
                 f'{max(steps) if steps else "?"}')
  for name in HISTORY_DIRS:
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and os.listdir(path):
      found.append(f'{name}/')
  return found


def _start_from_scratch(workdir: str, ckpt_dir: str, moved: List[str],
                        restart: bool, existed: bool = True) -> None:
  """Starts at step 0, moving a previous run's files aside.

  Asks for `restart` only when that run left something to lose: unreadable
  checkpoints, or results/ (a finished run). A run that stopped before its
  first checkpoint (preempted, killed) starts again from step 0 by itself.
  """
  history = previous_run(workdir)
  if not history and not moved:
    return  # A new run.
  found = (f'all {len(moved)} checkpoint(s) in {ckpt_dir} were unreadable '
           f'(moved to {os.path.join(workdir, UNREADABLE_DIR)})' if moved
           else f'{ckpt_dir} holds no checkpoint' if existed
           else f'{ckpt_dir} is missing')
  automatic = not restart and not moved and not os.path.isdir(
      os.path.join(workdir, 'results'))
  if not restart and not automatic:
    raise NoCheckpointError(
        f'{workdir} holds a previous run ({", ".join(history) or "only unreadable checkpoints"}) '
        f'but no usable checkpoint: {found}. Pass --restart_from_scratch to train '
        'again from step 0 (that run\'s files are moved aside first), or use '
        'another --workdir.')
  dest = os.path.join(workdir, PREVIOUS_DIR,
                      time.strftime('%Y%m%d_%H%M%S', time.gmtime()))
  if jax.process_index() == 0:
    os.makedirs(dest, exist_ok=True)
    for name in (METRICS_FILE,) + HISTORY_DIRS:
      if os.path.exists(os.path.join(workdir, name)):
        shutil.move(os.path.join(workdir, name), os.path.join(dest, name))
    why = ('the previous attempt stopped before its first checkpoint (e.g. '
           'preempted or killed)' if automatic else '--restart_from_scratch')
    print(f'Training from step 0 ({why}): {found}; the previous '
          f'run\'s files were moved to {dest}.', flush=True)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('rrl_jax_restart_from_scratch')


def reconcile_best(best_mngr, best: Dict[str, Any], start: int) -> Dict[str, Any]:
  """The resumed run's best-so-far, consistent with what best/ holds.

  A best checkpoint newer than the resumed step belongs to a discarded future
  (the run died after it): deleted, the resumed run re-evaluates those steps.
  A selected step that best/ lacks (emptied, partial or deleted) is forgotten
  with a warning: the next evaluation becomes the best.
  """
  for s in list(best_mngr.all_steps()):
    if s > start or best['step'] is None:
      best_mngr.delete(s)
  if best['step'] is not None and best['step'] not in best_mngr.all_steps():
    if jax.process_index() == 0:
      print(f'WARNING: {best_mngr.directory} holds no checkpoint of the selected '
            f'step {best["step"]} (empty, partial or deleted); selection starts '
            'again: the next evaluation becomes the best.', flush=True)
    best = {'fpr95': None, 'step': None}
  return best


def load_local_variables(directory: str, like: TrainState,
                         step: Optional[int] = None) -> Dict[str, Any]:
  """Restores params + batch_stats as numpy on this process (any process count)."""
  target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype),
                        {'params': like.params, 'batch_stats': like.batch_stats})
  mngr = manager(directory)
  step = mngr.latest_step() if step is None else step
  r = mngr.restore(step, args=restore_args(
      {PARAMS: target['params'], BATCH_STATS: target['batch_stats']}))
  mngr.close()
  return {'params': to_host(r[PARAMS]),
          'batch_stats': to_host(r[BATCH_STATS])}


def best_manager(directory: str) -> ocp.CheckpointManager:
  """The manager of best/: the selected checkpoint only."""
  return manager(directory, max_to_keep=1, cleanup_tmp_directories=True)


def save_best(best_mngr, step: int, state: TrainState, recalibrated: Optional[Any],
              mesh, config, selection_fpr95: float) -> None:
  """Saves the selected checkpoint (step `step`, scored `selection_fpr95`) to best/."""
  items = best_items(state, recalibrated, mesh, config)
  items[TRAIN_STATE] = {'step': int(step), 'selection_fpr95': selection_fpr95,
                        'protocol': config.protocol}
  best_mngr.save(step, args=save_args(items), force=True)


def last_checkpoint(mngr, ckpt_dir: str) -> str:
  """'DIR/STEP' of the newest finished checkpoint, or 'none'."""
  mngr.wait_until_finished()
  latest = mngr.latest_step()
  return f'{ckpt_dir}/{latest}' if latest is not None else 'none'


def best_items(state: TrainState, recalibrated: Optional[Any], mesh,
               config) -> Dict[str, Any]:
  """params, batch_stats and meta of a best checkpoint ({item name: value}).

  With precise BN, batch_stats are the recalibrated statistics (what was
  evaluated), the moving averages are kept as moving_batch_stats and meta
  says which statistics batch_stats holds ('bn_statistics').
  """
  from rrl_jax.training import bn_moving, bn_recalibration  # pylint: disable=g-import-not-at-top
  meta = checkpoint_meta(config)
  meta['bn_statistics'] = (
      bn_recalibration.moving_average_info(bn_moving.rule(config),
                                           config.get('model_name'))
      if recalibrated is None else
      dict(bn_recalibration.settings(config), kind='recalibrated', split='train'))
  items = {PARAMS: state.params, META: meta}
  if recalibrated is None:
    items[BATCH_STATS] = state.batch_stats
  else:
    items[BATCH_STATS] = bn_recalibration.replicate(recalibrated, mesh)
    items[MOVING_BATCH_STATS] = state.batch_stats
  return items


def load_local_moving_batch_stats(directory: str, like: TrainState,
                                  step: Optional[int] = None) -> Optional[Any]:
  """The moving averages kept in a best checkpoint (numpy), or None."""
  mngr = manager(directory)
  step = mngr.latest_step() if step is None else step
  if not os.path.isdir(os.path.join(directory, str(step),
                                    MOVING_BATCH_STATS)):
    mngr.close()
    return None
  target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), like.batch_stats)
  r = mngr.restore(step, args=restore_args({MOVING_BATCH_STATS: target}))
  mngr.close()
  return to_host(r[MOVING_BATCH_STATS])
