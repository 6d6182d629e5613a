"""The one checkpoint format of rrl_jax (Orbax CheckpointManager layout).

A checkpoint directory holds numbered steps, each with named items:
  params       parameters (pytree of arrays)            -- always
  batch_stats  BatchNorm moving statistics               -- always
  meta         JSON: {'format': 'rrl_jax', 'model': {...RRLNet kwargs},
               'inference_only': bool, 'source': ..., ...} -- always
  moving_batch_stats  BatchNorm moving averages, where batch_stats holds
               recalibrated population statistics (precise BN) -- optional
  opt_state    optimizer state                           -- training only
  train_state  JSON: step, data iterator position, PRNG  -- training only
Parameters and statistics restore on their own (`load_variables`), so training
checkpoints and `launch.convert` output are interchangeable for inference.

Below training and evaluation: what converters write, Matcher and the programs
read, and what training builds on (rrl_jax/training/checkpoints.py: resume, best/).
"""
import os
from typing import Any, Dict, Optional, Tuple

import orbax.checkpoint as ocp

from rrl_jax.errors import UserError

FORMAT = 'rrl_jax'
PARAMS, BATCH_STATS, META, OPT_STATE, TRAIN_STATE = (
    'params', 'batch_stats', 'meta', 'opt_state', 'train_state')
MOVING_BATCH_STATS = 'moving_batch_stats'
ITEM_NAMES = (PARAMS, BATCH_STATS, META, OPT_STATE, TRAIN_STATE, MOVING_BATCH_STATS)
JSON_ITEMS = (META, TRAIN_STATE)  # The others are pytrees of arrays.


class CheckpointError(UserError, ValueError):
  """A path is not a readable rrl_jax checkpoint."""


def save_args(items: Dict[str, Any]) -> ocp.args.Composite:
  """Orbax save arguments for {item name: value}: the only place they are built."""
  return ocp.args.Composite(**{
      k: ocp.args.JsonSave(v) if k in JSON_ITEMS else ocp.args.StandardSave(v)
      for k, v in items.items()})


def restore_args(items: Dict[str, Any]) -> ocp.args.Composite:
  """Orbax restore arguments for {item name: target (None: as saved)}."""
  return ocp.args.Composite(**{
      k: ocp.args.JsonRestore() if k in JSON_ITEMS else ocp.args.StandardRestore(v)
      for k, v in items.items()})


def manager(directory: str, **options) -> ocp.CheckpointManager:
  """A CheckpointManager over `directory` with rrl_jax's item names."""
  directory = os.path.abspath(directory)
  opts = ocp.CheckpointManagerOptions(create=True, **options)
  return ocp.CheckpointManager(directory, options=opts, item_names=ITEM_NAMES)


def save_variables(directory: str, variables: Dict[str, Any], meta: Dict[str, Any],
                   step: int = 0, moving_batch_stats: Optional[Any] = None) -> str:
  """Writes params + batch_stats + meta as step `step`; returns the step path.

  `moving_batch_stats`: the moving averages, kept beside recalibrated
  batch_stats (README "Precise BN").

  Orbax writes into a temporary directory and renames it when complete, so an
  interrupted save never leaves a readable half checkpoint.
  """
  meta = dict(meta, format=FORMAT)
  mngr = manager(directory)
  if step in mngr.all_steps():
    raise CheckpointError(f'{directory}: step {step} already exists; refusing '
                          'to overwrite it (choose another --out).')
  mngr.save(step, args=save_args({
      PARAMS: variables['params'],
      BATCH_STATS: variables.get('batch_stats', {}),
      META: meta,
      **({} if moving_batch_stats is None else
         {MOVING_BATCH_STATS: moving_batch_stats})}))
  mngr.wait_until_finished()
  mngr.close()
  return os.path.join(os.path.abspath(directory), str(step))


def _steps(path: str):
  return sorted(int(n) for n in os.listdir(path)
                if n.isdigit() and os.path.isdir(os.path.join(path, n, META)))


def resolve_workdir(path: str) -> Tuple[str, Optional[str]]:
  """A training workdir -> its `best/` (else `checkpoints/`), with a one-line note.

  Any other path is returned unchanged with note None.
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path) or _steps(path) or (
      os.path.isdir(os.path.join(path, META)) and os.path.basename(path).isdigit()):
    return path, None
  for sub, what in (('best', 'best checkpoint'), ('checkpoints', 'latest checkpoint')):
    inner = os.path.join(path, sub)
    if os.path.isdir(inner) and _steps(inner):
      return inner, f'{path} is a training workdir: using its {what}, {inner}'
  return path, None


def _resolve(path: str, step: Optional[int]) -> Tuple[str, int]:
  """Accepts a manager directory (latest or given step) or one step directory."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f'{path}: no such checkpoint directory.')
  if os.path.isdir(os.path.join(path, META)) and os.path.basename(path).isdigit():
    return os.path.dirname(path), int(os.path.basename(path))
  steps = _steps(path)
  if not steps:
    raise CheckpointError(
        f'{path}: not an rrl_jax checkpoint (no <step>/{META} inside). Pass a '
        'training workdir, its best/ or checkpoints/, or the output of '
        '`python -m launch.convert --keras_h5=... --out=DIR`.')
  if step is None:
    return path, steps[-1]
  if step not in steps:
    raise CheckpointError(f'{path}: no step {step}; available: {steps}.')
  return path, step


def load_meta(path: str, step: Optional[int] = None) -> Tuple[Dict[str, Any], int]:
  directory, step = _resolve(path, step)
  mngr = ocp.CheckpointManager(directory, item_names=ITEM_NAMES)
  try:
    meta = mngr.restore(step, args=restore_args({META: None}))[META]
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{directory}/{step}: unreadable checkpoint metadata '
                          f'({type(e).__name__}: {e}).') from e
  if not isinstance(meta, dict) or meta.get('format') != FORMAT:
    raise CheckpointError(f'{directory}/{step}: not an rrl_jax checkpoint '
                          f'(meta format is {meta.get("format") if isinstance(meta, dict) else meta!r}).')
  return meta, step


def load_variables(path: str, step: Optional[int] = None
                   ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """Restores {'params', 'batch_stats'} and meta from a checkpoint (latest step).

  Works for training checkpoints and converted Keras weights alike; the
  optimizer state is never read.
  """
  meta, step = load_meta(path, step)
  directory, _ = _resolve(path, step)
  mngr = ocp.CheckpointManager(directory, item_names=ITEM_NAMES)
  try:
    restored = mngr.restore(step, args=restore_args({PARAMS: None, BATCH_STATS: None}))
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{directory}/{step}: cannot restore parameters '
                          f'({type(e).__name__}: {e}).') from e
  return {'params': restored[PARAMS], 'batch_stats': restored[BATCH_STATS]}, meta


def has_item(path: str, item: str, step: Optional[int] = None) -> bool:
  directory, step = _resolve(path, step)
  return os.path.isdir(os.path.join(directory, str(step), item))


def load_moving_batch_stats(path: str, step: Optional[int] = None) -> Optional[Any]:
  """The moving averages kept beside recalibrated statistics, or None."""
  directory, step = _resolve(path, step)
  if not has_item(directory, MOVING_BATCH_STATS, step):
    return None
  mngr = ocp.CheckpointManager(directory, item_names=ITEM_NAMES)
  try:
    return mngr.restore(step, args=restore_args(
        {MOVING_BATCH_STATS: None}))[MOVING_BATCH_STATS]
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{directory}/{step}: cannot restore {MOVING_BATCH_STATS} '
                          f'({type(e).__name__}: {e}).') from e
