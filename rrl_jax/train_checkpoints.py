"""Training checkpoints in the rrl_jax format (rrl_jax/checkpoint.py), with resume.

A training step directory holds params, batch_stats, meta, opt_state and
train_state (step, data iterator position, run key); unreadable latest
checkpoints are moved aside and the previous one is used.
"""
import os
import shutil
import time
from typing import Any, Dict, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from rrl_jax import checkpoint as ckpt_lib
from rrl_jax.train_step import TrainState, to_host
from rrl_jax.workdir import config_to_dict



def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def checkpoint_meta(config) -> Dict[str, Any]:
  return {'format': ckpt_lib.FORMAT, 'model_name': config.model_name,
          'model': config_to_dict(config.model), 'dtype': config.dtype,
          'inference_only': False, 'source': 'rrl_jax.train'}


def save_checkpoint(mngr, state: TrainState, train_meta, config) -> None:
  step = int(train_meta['step'])
  mngr.save(step, args=ocp.args.Composite(**{
      ckpt_lib.PARAMS: ocp.args.StandardSave(state.params),
      ckpt_lib.BATCH_STATS: ocp.args.StandardSave(state.batch_stats),
      ckpt_lib.META: ocp.args.JsonSave(checkpoint_meta(config)),
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


def best_items(state: TrainState, recalibrated: Optional[Any], mesh,
               config) -> Dict[str, Any]:
  """params, batch_stats and meta of a best checkpoint (Orbax save args).

  With precise BN, batch_stats are the recalibrated statistics (what was
  evaluated), the moving averages are kept as moving_batch_stats and meta
  says which statistics batch_stats holds ('bn_statistics').
  """
  from rrl_jax import bn_recalibration  # pylint: disable=g-import-not-at-top
  meta = checkpoint_meta(config)
  meta['bn_statistics'] = (
      {'kind': 'moving_average', 'batches': 0} if recalibrated is None else
      dict(bn_recalibration.settings(config), kind='recalibrated', split='train'))
  items = {ckpt_lib.PARAMS: ocp.args.StandardSave(state.params),
           ckpt_lib.META: ocp.args.JsonSave(meta)}
  if recalibrated is None:
    items[ckpt_lib.BATCH_STATS] = ocp.args.StandardSave(state.batch_stats)
  else:
    items[ckpt_lib.BATCH_STATS] = ocp.args.StandardSave(
        bn_recalibration.replicate(recalibrated, mesh))
    items[ckpt_lib.MOVING_BATCH_STATS] = ocp.args.StandardSave(state.batch_stats)
  return items


def load_local_moving_batch_stats(directory: str, like: TrainState,
                                  step: Optional[int] = None) -> Optional[Any]:
  """The moving averages kept in a best checkpoint (numpy), or None."""
  mngr = ckpt_lib.manager(directory)
  step = mngr.latest_step() if step is None else step
  if not os.path.isdir(os.path.join(directory, str(step),
                                    ckpt_lib.MOVING_BATCH_STATS)):
    mngr.close()
    return None
  target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), like.batch_stats)
  r = mngr.restore(step, args=ocp.args.Composite(**{
      ckpt_lib.MOVING_BATCH_STATS: ocp.args.StandardRestore(target)}))
  mngr.close()
  return to_host(r[ckpt_lib.MOVING_BATCH_STATS])
