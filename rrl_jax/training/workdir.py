"""A run directory: its config (validated, saved as JSON, compared on restart)
and its lock (one run per directory).

Nothing is written to a run directory before the config is valid and the
lock is held. Also turns on JAX's persistent compilation cache.
"""
import contextlib
import datetime
import json
import os
import socket
import sys
import time
from typing import Any, Dict, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from rrl_jax.errors import UserError, WorkdirError

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
# Keys added after runs were saved without them: the behaviour those runs had.
LEGACY_VALUES = {'bn_moving_average': 'plain'}
# Fields that only change how long / how verbosely a run goes: a restart may
# change them without --allow_config_change (e.g. to extend training).
RUN_LENGTH_KEYS = ('num_train_steps', 'num_epochs', 'eval_every', 'log_every',
                   'checkpoint_every', 'keep', 'eval_batch_size',
                   'compilation_cache_dir',
                   # How many test pairs are scored (absent in older runs).
                   'dataset.test_max_pairs',
                   # Evaluation only: which BatchNorm statistics are scored.
                   'bn_recalibration.batches', 'bn_recalibration.batch_size',
                   'bn_recalibration.augment')


LOCK_FILE = 'run.lock'


class ConfigMismatchError(UserError, ValueError):
  """The workdir holds a run with a different configuration."""



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


def check_config(config, workdir: str, allow_change: bool) -> None:
  """Refuses a workdir holding a run with a different config (reads only)."""
  new = config_to_dict(config)
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if not has_checkpoint(workdir):
      return  # A run that never wrote a checkpoint has nothing to continue.
    # A key the saved run predates compares as the value that run used.
    a = dict(LEGACY_VALUES, **_flatten(old))
    b = _flatten(new)
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


def has_checkpoint(workdir: str) -> bool:
  """Whether workdir/checkpoints holds a step (readable or not)."""
  ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
  return os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir))


def save_config(config, workdir: str) -> None:
  """Writes workdir/config.json (process 0), atomically."""
  new = config_to_dict(config)
  path = os.path.join(workdir, CONFIG_FILE)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)


def check_and_save_config(config, workdir: str, allow_change: bool) -> None:
  """Saves the resolved config; refuses a workdir holding a different run."""
  check_config(config, workdir, allow_change)
  save_config(config, workdir)


# Programs that compile faster than this are not written to the cache.
MIN_CACHED_COMPILE_SECS = 0.5


def enable_compilation_cache(path: str) -> None:
  """Turns on JAX's persistent compilation cache ('' or 'none': off)."""
  if not path or path.lower() == 'none':
    return
  path = os.path.abspath(os.path.expanduser(path))
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_CACHED_COMPILE_SECS)


# ----------------------------------------------------------------------------
# The run lock: workdir/run.lock holds {host, pid, since}; created atomically
# (O_CREAT | O_EXCL), removed on exit. A lock whose process is gone (same
# host) is stale and taken over.


def _start_time(pid: int) -> Optional[str]:
  """The process's start time (Linux /proc), to tell a reused pid apart."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(holder: Dict[str, Any]) -> bool:
  pid = int(holder.get('pid', -1))
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  except (OverflowError, ValueError):
    return False
  start = holder.get('start')
  return start is None or _start_time(pid) in (None, start)


def _describe(holder: Dict[str, Any]) -> str:
  return (f'host {holder.get("host", "?")}, pid {holder.get("pid", "?")}, '
          f'since {holder.get("since", "?")}')


class RunLock:
  """Holds workdir/run.lock while a run uses the directory.

  `lock_file` and `flag` serve other outputs: launch.evaluate and launch.export
  lock their --out with a lock file beside it (`output_lock`).
  """

  def __init__(self, workdir: str, lock_file: str = LOCK_FILE,
               flag: str = '--workdir', target: Optional[str] = None):
    self.workdir = workdir
    self.path = os.path.join(workdir, lock_file)
    self.flag = flag
    self.target = target or workdir  # What the lock guards, in messages.
    self._created_dir = False
    self._held = False

  def acquire(self) -> None:
    me = {'host': socket.gethostname(), 'pid': os.getpid(),
          'start': _start_time(os.getpid()),
          'since': datetime.datetime.now(datetime.timezone.utc).strftime(
              '%Y-%m-%d %H:%M:%S UTC'),
          'command': ' '.join(sys.argv)}
    try:
      if not os.path.isdir(self.workdir):
        os.makedirs(self.workdir)
        self._created_dir = True
      for _ in range(3):
        try:
          fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
          self._clear_stale_or_refuse()
          continue
        with os.fdopen(fd, 'w') as f:
          json.dump(me, f)
        self._held = True
        return
    except WorkdirError:
      raise
    except OSError as e:  # Read-only, not a directory, no space, ...
      raise WorkdirError(f'cannot write to {self.flag} {self.workdir} '
                         f'({e.strerror or e}); choose a writable directory.') from None
    raise WorkdirError(f'{self.path}: could not take the lock (it keeps '
                       'reappearing); is another run starting right now?')

  def _clear_stale_or_refuse(self) -> None:
    try:
      with open(self.path) as f:
        holder = json.load(f)
    except FileNotFoundError:
      return  # Released meanwhile: try again.
    except (OSError, ValueError):
      # Empty or torn: being written now, or left by a crash at creation.
      if time.time() - os.path.getmtime(self.path) < 10:
        raise WorkdirError(f'{self.target} is being taken by another run '
                           f'right now ({self.path}); use another {self.flag}.') from None
      holder = {}
    if holder.get('host') == socket.gethostname() and not _alive(holder):
      print(f'WARNING: removing stale lock {self.path} ({_describe(holder)}: that '
            'process no longer runs).', flush=True)
      os.remove(self.path)
      return
    if not holder:
      raise WorkdirError(f'{self.path} is unreadable; if no run uses {self.target}, '
                         'delete it and start again.')
    raise WorkdirError(
        f'{self.target} is in use by another run ({_describe(holder)}); wait for '
        f'it to finish or stop it, or use another {self.flag}. If that run is gone '
        f'(e.g. another host crashed), delete {self.path}.')

  def release(self) -> None:
    if not self._held:
      return
    self._held = False
    try:
      with open(self.path) as f:
        mine = json.load(f).get('pid') == os.getpid()
      if mine:
        os.remove(self.path)
      if self._created_dir and not os.listdir(self.workdir):
        os.rmdir(self.workdir)  # A run that never started leaves nothing.
    except (OSError, ValueError) as e:
      logging.warning('Could not release %s: %s', self.path, e)


def output_lock(out: str, flag: str = '--out'):
  """`run_lock` for an output file or folder: the lock is OUT.lock beside it."""
  out = os.path.normpath(os.path.abspath(out))
  return run_lock(os.path.dirname(out), lock_file=os.path.basename(out) + '.lock',
                  flag=flag, target=out)


@contextlib.contextmanager
def run_lock(workdir: str, lock_file: str = LOCK_FILE, flag: str = '--workdir',
             target: Optional[str] = None):
  """Holds the workdir's lock (process 0 only; the others share its run)."""
  lock = RunLock(workdir, lock_file, flag, target)
  error = None
  if jax.process_index() == 0:
    try:
      lock.acquire()
    except UserError as e:
      error = e
  if jax.process_count() > 1:
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if not int(ok) and error is None:
      error = WorkdirError(f'{workdir}: process 0 could not take the run lock '
                           '(see its log).')
  if error is not None:
    raise error
  try:
    yield lock
  finally:
    lock.release()
