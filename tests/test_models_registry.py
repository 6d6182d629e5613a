"""Models by name: lazy registry, config round trip for every network."""
import importlib.util

import pytest

from rrl_jax import models
from rrl_jax.models import get_model, model_config, model_from_config, model_name


@pytest.mark.parametrize('name', sorted(models.MODELS))
def test_every_registered_network_round_trips(name):
  if importlib.util.find_spec(models.MODELS[name].split(':')[0]) is None:
    pytest.skip(f'{models.MODELS[name]} does not exist (yet).')
  model = get_model(name)
  assert model_name(model) == name
  cfg = model_config(model)
  assert cfg['model_name'] == name and 'dtype' not in cfg and 'name' not in cfg
  assert model_from_config(cfg) == model
  assert model_from_config(dict(cfg, unknown_key=1)) == model  # older metas


def test_old_metas_without_a_name_are_rrl_net():
  model = model_from_config({'widths': [4, 8, 8, 16, 16]})
  assert type(model).__name__ == 'RRLNet' and model.widths == (4, 8, 8, 16, 16)
  assert model_from_config({'widths': [4, 8, 8, 8, 8, 8]}, name='scfdm').widths == (
      4, 8, 8, 8, 8, 8)


def test_unknown_and_unloadable_models_are_clear(monkeypatch):
  with pytest.raises(ValueError, match=r"Unknown model 'resnet'; known: \['afd_net'"):
    get_model('resnet')
  monkeypatch.setitem(models.MODELS, 'ghost', 'rrl_jax.models.ghost:Ghost')
  with pytest.raises(ValueError, match=r"'ghost' is registered as rrl_jax.models.ghost:Ghost "
                                       r'but cannot be loaded'):
    get_model('ghost')
