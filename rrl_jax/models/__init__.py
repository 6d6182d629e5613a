"""Models, looked up by name (big_vision style): `get_model('rrl_net', **kw)`."""
import dataclasses
from typing import Any, Dict

from rrl_jax.models.rrl_net import RRLNet, check_patches

MODELS = {'rrl_net': RRLNet}
_CONFIG_FIELDS = ('widths', 'stage_heads', 'module_heads', 'head_hidden', 'patch_size')


def get_model(name: str, **kwargs):
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; known: {sorted(MODELS)}.')
  return MODELS[name](**kwargs)


def model_config(model: RRLNet) -> Dict[str, Any]:
  """JSON-able architecture kwargs (what a checkpoint's meta['model'] holds)."""
  return {f: list(getattr(model, f)) if isinstance(getattr(model, f), (tuple, list))
          else getattr(model, f) for f in _CONFIG_FIELDS}


def model_from_config(cfg: Dict[str, Any], **overrides) -> RRLNet:
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()
            if k in _CONFIG_FIELDS}
  kwargs.update(overrides)
  return RRLNet(**kwargs)
