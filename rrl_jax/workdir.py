"""A run directory's configuration: saved as JSON, compared on restart (issue 3).

Also turns on JAX's persistent compilation cache and validates config choices.
"""
import json
import os
from typing import Any, Dict

from absl import logging
import jax
import ml_collections

CONFIG_FILE = 'config.json'
# Fields that only change how long / how verbosely a run goes: a restart may
# change them without --allow_config_change (e.g. to extend training).
RUN_LENGTH_KEYS = ('num_train_steps', 'num_epochs', 'eval_every', 'log_every',
                   'checkpoint_every', 'keep', 'eval_batch_size',
                   'compilation_cache_dir',
                   # Evaluation only: which BatchNorm statistics are scored.
                   'bn_recalibration.batches', 'bn_recalibration.batch_size',
                   'bn_recalibration.augment')


class ConfigMismatchError(ValueError):
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
  bn = config.get('bn_recalibration')
  if bn is not None and (int(bn.batches) < -1 or int(bn.batch_size) < 0):
    raise ValueError(f'config.bn_recalibration: batches must be -1 (auto), 0 (off) '
                     f'or K > 0 and batch_size >= 0 (0: config.batch_size); got '
                     f'batches={bn.batches}, batch_size={bn.batch_size}.')
  if config.dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got "
                     f'{config.dtype!r}.')
