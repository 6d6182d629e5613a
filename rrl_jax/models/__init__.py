"""Models, looked up by name (big_vision style): `get_model('rrl_net', **kw)`."""
from rrl_jax.models.rrl_net import RRLNet, check_patches

MODELS = {'rrl_net': RRLNet}


def get_model(name: str, **kwargs):
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; known: {sorted(MODELS)}.')
  return MODELS[name](**kwargs)
