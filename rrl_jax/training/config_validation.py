"""Config validation: every name against its registry, every number in range,
before anything is loaded, compiled or written (README, "Training").
"""
import dataclasses
import inspect
import math
from typing import Optional

import jax
import numpy as np

from rrl_jax.data.toy import TOY_DATASET
from rrl_jax.errors import ConfigError

PROTOCOLS = ('clean', 'paper')
DTYPES = ('float32', 'bfloat16')


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
  from rrl_jax.training import augment
  from rrl_jax.training import losses
  from rrl_jax.training import optim  # pylint: disable=g-import-not-at-top
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
  if 'test_max_pairs' in config.dataset:
    need('dataset.test_max_pairs', lambda v: _is_int(v) and v >= 0,
         'must be 0 (every pair) or an integer > 0')
  need('eval_every', lambda v: _is_int(v) and v >= -1,
       'must be -1 (every epoch), 0 (only at the end) or a step count > 0')
  need('optimizer.learning_rate', lambda v: _is_number(v) and v > 0,
       'must be a number > 0')
  steps, epochs = config.num_train_steps, config.num_epochs
  if not (_is_int(steps) and (steps > 0 or steps == -1)):
    # 0 is refused: it would silently mean "the whole num_epochs budget".
    problems.append(f'config.num_train_steps={steps!r} must be a step count > 0, '
                    'or -1 to train config.num_epochs epochs')
  elif not (steps > 0 or (_is_number(epochs) and epochs > 0)):
    problems.append(f'config.num_train_steps={steps!r} and config.num_epochs='
                    f'{epochs!r}: set num_train_steps > 0 or num_epochs > 0')
  problems += _model_problems(config, models)
  if config.get('bn_moving_average') is not None:
    from rrl_jax.training import bn_moving  # pylint: disable=g-import-not-at-top
    need('bn_moving_average', lambda v: v in bn_moving.RULES,
         f'must be one of {", ".join(bn_moving.RULES)}')
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
