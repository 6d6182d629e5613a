"""A run directory: its config (validated, saved as JSON, compared on restart)
and its lock (one run per directory).

Nothing is written to a run directory before the config is valid and the
lock is held. Also turns on JAX's persistent compilation cache.
"""
import contextlib
import dataclasses
import datetime
import inspect
import json
import math
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

from rrl_jax.errors import ConfigError, UserError, WorkdirError

CONFIG_FILE = 'config.json'
# Fields that only change how long / how verbosely a run goes: a restart may
# change them without --allow_config_change (e.g. to extend training).
RUN_LENGTH_KEYS = ('num_train_steps', 'num_epochs', 'eval_every', 'log_every',
                   'checkpoint_every', 'keep', 'eval_batch_size',
                   'compilation_cache_dir',
                   # Evaluation only: which BatchNorm statistics are scored.
                   'bn_recalibration.batches', 'bn_recalibration.batch_size',
                   'bn_recalibration.augment')


LOCK_FILE = 'run.lock'
PROTOCOLS = ('clean', 'paper')
DTYPES = ('float32', 'bfloat16')
TOY_DATASET = 'toy'  # train.py's tiny in-memory dataset for tests.


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


def enable_compilation_cache(path: str) -> None:
  """Turns on JAX's persistent compilation cache ('' or 'none': off)."""
  if not path or path.lower() == 'none':
    return
  path = os.path.abspath(os.path.expanduser(path))
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


# ----------------------------------------------------------------------------
# Config validation: every name against its registry, every number in range,
# before anything is loaded, compiled or written.


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return (isinstance(v, (int, float, np.integer, np.floating))
          and not isinstance(v, bool) and math.isfinite(float(v)))


def _positive_ints(v) -> bool:
  return (isinstance(v, (tuple, list)) and len(v) > 0
          and all(_is_int(w) and w > 0 for w in v))


def _builder_kwargs(name: str, builders) -> Optional[set]:
  """The builder_kwargs dataset `name` takes (its OPTIONS and keyword args)."""
  if name == TOY_DATASET:
    return {'num_pairs'}
  if name not in builders:
    return None
  cls = builders[name]
  valid = set(getattr(cls, 'OPTIONS', {}))
  for c in cls.__mro__:
    if '__init__' in vars(c) and c.__module__.startswith('rrl_jax.'):
      valid |= {p.name for p in inspect.signature(vars(c)['__init__']).parameters.values()
                if p.kind == p.KEYWORD_ONLY}
  return valid - {'manual_dir', 'data_dir', 'config'}  # Set by dataset.* fields.


def config_problems(config, device_count: Optional[int] = None) -> list:
  """Every problem of `config` as 'config.FIELD=VALUE ...: what is valid'."""
  # Imported here: the registries pull in models, optimizers and TFDS.
  from rrl_jax import augment, losses, optim  # pylint: disable=g-import-not-at-top
  from rrl_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from rrl_jax import models  # pylint: disable=g-import-not-at-top
  from rrl_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  problems = []

  def get(field):
    node = config
    for part in field.split('.'):
      node = node[part]
    return node

  def need(field, ok, what):
    value = get(field)
    if not ok(value):
      problems.append(f'config.{field}={value!r} {what}')

  names = {
      'model_name': sorted(models.MODELS),
      'dataset.name': sorted(data_lib.BUILDERS) + [TOY_DATASET],
      'optimizer.name': list(optim.OPTIMIZERS),
      'optimizer.schedule': list(optim.SCHEDULES),
      'recon_loss': list(losses.RECON_LOSSES),
      'augment.order': list(augment.ORDERS),
      'data_mode': list(pipeline.MODES),
      'protocol': list(PROTOCOLS),
      'dtype': list(DTYPES),
  }
  for field, valid in names.items():
    need(field, lambda v, valid=valid: v in valid,
         f'is unknown; valid: {", ".join(valid)}')

  positive_int = lambda v: _is_int(v) and v > 0
  for field in ('batch_size', 'eval_batch_size', 'log_every', 'checkpoint_every'):
    need(field, positive_int, 'must be an integer > 0')
  need('keep', lambda v: _is_int(v) and v >= 1, 'must be an integer >= 1')
  need('eval_every', lambda v: _is_int(v) and v >= -1,
       'must be -1 (every epoch), 0 (only at the end) or a step count > 0')
  need('optimizer.learning_rate', lambda v: _is_number(v) and v > 0,
       'must be a number > 0')
  steps, epochs = config.num_train_steps, config.num_epochs
  if not ((_is_int(steps) and steps > 0) or (_is_number(epochs) and epochs > 0)):
    problems.append(f'config.num_train_steps={steps!r} and config.num_epochs='
                    f'{epochs!r}: set num_train_steps > 0 or num_epochs > 0')
  problems += _model_problems(config, models)
  bn = config.get('bn_recalibration')
  if bn is not None:
    need('bn_recalibration.batches', lambda v: _is_int(v) and v >= -1,
         'must be -1 (auto: on for the clean protocol), 0 (off) or K > 0')
    need('bn_recalibration.batch_size', lambda v: _is_int(v) and v >= 0,
         'must be 0 (config.batch_size) or an integer > 0')
  valid_kwargs = _builder_kwargs(config.dataset.name, data_lib.BUILDERS)
  given = config.dataset.get('builder_kwargs') or {}
  unknown = sorted(set(given.keys()) - valid_kwargs) if valid_kwargs is not None else []
  if unknown:
    problems.append(f'config.dataset.builder_kwargs has {unknown}, which dataset '
                    f'{config.dataset.name!r} does not take; valid: '
                    f'{", ".join(sorted(valid_kwargs)) or "none"}')
  if device_count and positive_int(config.batch_size):
    n = config.num_devices
    if _is_int(n) and n > 0:
      if n > device_count or jax.process_count() > 1:
        problems.append(f'config.num_devices={n} but this run has {device_count} '
                        'device(s) (num_devices > 0 only applies to one process); '
                        'use -1 for all')
      device_count = min(n, device_count)
    if config.batch_size % device_count:
      problems.append(f'config.batch_size={config.batch_size} is not divisible by '
                      f'the {device_count} devices; use a multiple of {device_count}')
  return problems


def _model_problems(config, models) -> list:
  """config.model fields the model_name's module takes, sane widths, heads, loss terms."""
  if config.model_name not in models.MODELS:
    return []  # Reported with the other unknown names.
  cls = models.model_class(config.model_name)
  fields = {f.name for f in dataclasses.fields(cls)} - {'parent', 'name'}
  given = dict(config.model.to_dict())
  unknown = sorted(set(given) - fields)
  if unknown:
    return [f'config.model has {unknown}, which model {config.model_name!r} does not '
            f'take; valid: {", ".join(sorted(fields - {"dtype", "param_dtype"}))}']
  problems = []
  for key, value in given.items():
    if key.endswith('widths') or key == 'head_hidden':
      if not _positive_ints(value):
        problems.append(f'config.model.{key}={value!r} must be a non-empty list of '
                        'integers > 0')
    elif key.endswith('_width') and not (_is_int(value) and value > 0):
      problems.append(f'config.model.{key}={value!r} must be an integer > 0')
  widths = given.get('widths')
  if config.model_name == 'rrl_net' and not problems and widths:
    stages = range(1, len(widths) + 1)
    heads = given.get('stage_heads', ())
    if not (isinstance(heads, (tuple, list)) and len(widths) in heads
            and all(s in stages for s in heads)):
      problems.append(f'config.model.stage_heads={heads!r} must be stages in '
                      f'1..{len(widths)} including the last one ({len(widths)})')
    module_heads = given.get('module_heads', ())
    if not (isinstance(module_heads, (tuple, list))
            and all(s in stages for s in module_heads)):
      problems.append(f'config.model.module_heads={module_heads!r} must be stages '
                      f'in 1..{len(widths)}')
  if problems:
    return problems
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
  try:
    outputs = tuple(cls(**kwargs).output_names)
  except (TypeError, ValueError) as e:
    return [f'config.model does not build {config.model_name!r}: {e}']
  unknown = sorted(set(config.loss_weights.keys()) - set(outputs))
  if unknown:
    problems.append(f'config.loss_weights has term(s) {unknown} that model '
                    f'{config.model_name!r} does not output; valid: {", ".join(outputs)}')
  return problems


def validate_config(config, device_count: Optional[int] = None) -> None:
  """Raises ConfigError listing every problem (one line), or returns."""
  problems = config_problems(config, device_count)
  if problems:
    raise ConfigError('invalid config: ' + '; '.join(problems) + '.')


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
  """Holds workdir/run.lock while a run uses the directory."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
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
      raise WorkdirError(f'cannot write to --workdir {self.workdir} '
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
        raise WorkdirError(f'{self.workdir} is being taken by another run '
                           f'right now ({self.path}); use another --workdir.') from None
      holder = {}
    if holder.get('host') == socket.gethostname() and not _alive(holder):
      print(f'WARNING: removing stale lock {self.path} ({_describe(holder)}: that '
            'process no longer runs).', flush=True)
      os.remove(self.path)
      return
    if not holder:
      raise WorkdirError(f'{self.path} is unreadable; if no run uses {self.workdir}, '
                         'delete it and start again.')
    raise WorkdirError(
        f'{self.workdir} is in use by another run ({_describe(holder)}); wait for '
        f'it to finish or stop it, or use another --workdir. If that run is gone '
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


@contextlib.contextmanager
def run_lock(workdir: str):
  """Holds the workdir's lock (process 0 only; the others share its run)."""
  lock = RunLock(workdir)
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
