"""RRLNet: Keras parameter counts, output names, input errors, reduced widths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.models import RRLNet, get_model, model_config, model_from_config

from conftest import SMALL_MODEL


def _abstract_variables(model, **kw):
  x = jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32)
  return jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b, **kw), x, x)


def test_parameter_counts_equal_official_keras_model():
  variables = _abstract_variables(RRLNet())
  assert pruning.count_parameters(variables['params']) == 12_816_740
  assert pruning.count_parameters(variables['batch_stats']) == 12_672
  pruned = pruning.inference_variables(variables)
  assert pruning.count_parameters(pruned['params']) == 9_394_105
  assert pruning.count_parameters(pruned['batch_stats']) == 9_920


def test_score_only_init_creates_exactly_the_inference_subtree():
  full = _abstract_variables(RRLNet())
  score_only = _abstract_variables(RRLNet(), score_only=True)
  pruned = pruning.inference_variables(full)
  assert (jax.tree_util.tree_structure(score_only)
          == jax.tree_util.tree_structure(pruned))


def test_outputs_are_named_and_shaped():
  model = RRLNet(**SMALL_MODEL)
  x = jnp.full((3, 64, 64, 1), 0.5)
  variables = model.init(jax.random.PRNGKey(0), x, x)
  out = model.apply(variables, x, x)
  assert tuple(out) == model.output_names == (
      'stage3', 'stage4', 'stage5', 'module3', 'module4', 'module5',
      'recon_a', 'recon_b')
  for name in model.output_names:
    want = (3, 64, 64, 1) if name.startswith('recon') else (3,)
    assert out[name].shape == want, name
  assert float(out['recon_a'].min()) >= 0 and float(out['recon_a'].max()) <= 1


def test_configurable_heads_and_widths():
  model = RRLNet(widths=(4, 8, 8, 16, 16), stage_heads=(5,), module_heads=(4,),
                 head_hidden=(8,))
  out = _abstract_variables(model)
  assert sorted(out['params']) == ['decoder_a', 'decoder_b', 'encoder_a',
                                   'encoder_b', 'fil', 'metric', 'module_head4',
                                   'stage_head5']
  assert out['params']['metric']['stage5']['cbl2']['conv']['kernel'].shape[-1] == 32
  with pytest.raises(ValueError, match='must include the last stage 5'):
    _abstract_variables(RRLNet(widths=SMALL_MODEL['widths'], stage_heads=(3, 4)))


def test_model_registry_and_config_round_trip():
  model = get_model('rrl_net', **SMALL_MODEL)
  again = model_from_config(model_config(model))
  assert again == model
  with pytest.raises(ValueError, match='Unknown model'):
    get_model('resnet')


@pytest.mark.parametrize('shape,dtype,match', [
    ((2, 64, 64), np.float32, r'expected shape \(N, 64, 64, 1\).*got \(2, 64, 64\)'),
    ((2, 32, 32, 1), np.float32, r'got \(2, 32, 32, 1\)'),
    ((2, 64, 64, 3), np.float32, r'got \(2, 64, 64, 3\)'),
    ((2, 64, 64, 1), np.uint8, r'expected a float array.*got dtype uint8'),
])
def test_bad_input_raises_one_clear_error(shape, dtype, match):
  model = RRLNet(**SMALL_MODEL)
  good = jnp.zeros((2, 64, 64, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), good, good))
  bad = np.zeros(shape, dtype)
  with pytest.raises(ValueError, match=match):
    model.apply(variables, bad, good)
  with pytest.raises(ValueError, match=match.replace('xa', 'xb')):
    model.apply(variables, good, bad, score_only=True)
