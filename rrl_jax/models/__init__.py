"""Models, looked up by name (big_vision style): `get_model('rrl_net', **kw)`.

RRL-Net and the five comparison networks of the official repository
(network_models/*.py). Modules are imported on lookup, so one network's
module never has to be importable for another to work.
"""
import dataclasses
import importlib
from typing import Any, Dict, Optional

from rrl_jax.models.rrl_net import RRLNet, check_patches

# Registry name -> 'module:Class'.
MODELS = {
    'rrl_net': 'rrl_jax.models.rrl_net:RRLNet',
    'scfdm': 'rrl_jax.models.scfdm:SCFDM',
    'afd_net': 'rrl_jax.models.afd_net:AFDNet',
    'mfd_net': 'rrl_jax.models.mfd_net:MFDNet',
    'efr_net': 'rrl_jax.models.efr_net:EFRNet',
    'fil_net': 'rrl_jax.models.fil_net:FILNet',
    'kgl_net': 'rrl_jax.models.kgl_net:KGLNet',
}
DEFAULT_MODEL = 'rrl_net'
# Module fields that are not architecture (not stored in a checkpoint's meta).
_NOT_CONFIG = ('parent', 'name', 'dtype', 'param_dtype')


def model_class(name: str):
  """The Flax module class registered as `name` (ValueError listing the known ones)."""
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; known: {sorted(MODELS)}.')
  module, cls = MODELS[name].split(':')
  try:
    return getattr(importlib.import_module(module), cls)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'Model {name!r} is registered as {MODELS[name]} but cannot '
                     f'be loaded: {e}') from e


def get_model(name: str, **kwargs):
  return model_class(name)(**kwargs)


def model_name(model) -> str:
  """Registry name of a model instance."""
  cls = type(model)
  for name, target in MODELS.items():
    if target == f'{cls.__module__}:{cls.__name__}':
      return name
  raise ValueError(f'{cls.__name__} is not a registered model; known: {sorted(MODELS)}.')


def _fields(cls):
  return [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_CONFIG]


def _tuples(value):
  """JSON lists back to (nested) tuples: module fields must be hashable."""
  if isinstance(value, (list, tuple)):
    return tuple(_tuples(v) for v in value)
  return value


def model_config(model) -> Dict[str, Any]:
  """JSON-able architecture kwargs plus 'model_name' (a checkpoint's meta['model'])."""
  cfg: Dict[str, Any] = {'model_name': model_name(model)}
  for f in _fields(type(model)):
    value = getattr(model, f)
    cfg[f] = list(value) if isinstance(value, (tuple, list)) else value
  return cfg


def model_from_config(cfg: Dict[str, Any], name: Optional[str] = None,
                      **overrides):
  """Inverse of model_config; `name` or cfg['model_name'], else RRL-Net.

  Keys that are not fields of the model are ignored (older checkpoints).
  """
  cls = model_class(name or cfg.get('model_name') or DEFAULT_MODEL)
  fields = set(_fields(cls))
  kwargs = {k: _tuples(v) for k, v in cfg.items() if k in fields}
  kwargs.update(overrides)
  return cls(**kwargs)
