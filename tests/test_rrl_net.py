"""RRLNet: Keras parameter counts, output names, input errors, reduced widths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.models import RRLNet, get_model, model_config, model_from_config

from conftest import SMALL_MODEL

pytestmark = pytest.mark.heavy(seconds=85)


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


# ---------------------------------------------------------------------------
# Ablations (rrl_jax/models/variants.py): each removes one component.

from rrl_jax.models import variants  # pylint: disable=g-import-not-at-top,wrong-import-position


def _small_params(variant):
  model = variants.build(variant, reduced=True)
  return model, _abstract_variables(model, train=True)['params']


@pytest.mark.parametrize('ablation,gone,outputs_gone', [
    ('no_ae', {'decoder_a', 'decoder_b'}, {'recon_a', 'recon_b'}),
    ('no_fil', {'fil', 'module_head3', 'module_head4', 'module_head5'},
     {'module3', 'module4', 'module5'}),
    ('no_module_heads', {'module_head3', 'module_head4', 'module_head5'},
     {'module3', 'module4', 'module5'}),
    ('final_head_only', {'stage_head3', 'stage_head4'}, {'stage3', 'stage4'}),
])
def test_ablation_removes_its_component_only(ablation, gone, outputs_gone):
  base_model, base = _small_params('rrl_net')
  model, params = _small_params(f'rrl_net:{ablation}')
  assert set(params) == set(base) - gone
  assert set(model.output_names) == set(base_model.output_names) - outputs_gone
  x = jnp.full((2, 64, 64, 1), 0.5)
  variables = model.init(jax.random.PRNGKey(0), x, x, train=True)
  out = model.apply(variables, x, x)
  assert tuple(out) == model.output_names
  # Every remaining submodule keeps its shapes (without FIL the metric
  # network reads c_i instead of 2 c_i channels: tested below).
  for name in set(params) - ({'metric'} if ablation == 'no_fil' else set()):
    assert (jax.tree_util.tree_map(lambda a: a.shape, params[name])
            == jax.tree_util.tree_map(lambda a: a.shape, base[name])), name


def test_no_fil_feeds_abs_differences_to_the_metric_network():
  model, params = _small_params('rrl_net:no_fil')
  _, base = _small_params('rrl_net')
  # Metric stage 1 reads c1 channels (|fA - fB|) instead of 2 c1 (FIL's d1).
  k = params['metric']['stage1']['cbl1']['conv']['kernel'].shape
  assert k[2] == model.widths[0] == base['metric']['stage1']['cbl1']['conv']['kernel'].shape[2] // 2
  x = jnp.full((2, 64, 64, 1), 0.5)
  variables = model.init(jax.random.PRNGKey(0), x, x)
  # With branch B's encoder a copy of A's and identical inputs, |fA - fB| = 0
  # at every stage, so the score cannot depend on the (identical) patches.
  variables = {c: dict(v, encoder_b=v['encoder_a']) for c, v in variables.items()}
  y = jnp.full((2, 64, 64, 1), 0.9)
  a = model.apply(variables, x, x, score_only=True)
  b = model.apply(variables, y, y, score_only=True)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
  z = jnp.asarray(np.random.default_rng(3).uniform(size=(2, 64, 64, 1)), jnp.float32)
  assert not np.allclose(np.asarray(model.apply(variables, x, z, score_only=True)),
                         np.asarray(a), rtol=1e-4)
  with pytest.raises(ValueError, match='module_heads'):
    RRLNet(**SMALL_MODEL, fil=False).init(jax.random.PRNGKey(0), x, x)


def test_no_mgla_is_the_identity():
  _, base = _small_params('rrl_net')
  model, params = _small_params('rrl_net:no_mgla')
  assert 'mgla' in base['encoder_a']['stage1']
  for tree in (params['encoder_a'], params['decoder_b']):
    assert not any('mgla' in stage for stage in tree.values())
  n_mgla = sum(pruning.count_parameters(s['mgla'])
               for part in ('encoder_a', 'encoder_b', 'decoder_a', 'decoder_b')
               for s in base[part].values() if isinstance(s, dict) and 'mgla' in s)
  assert (pruning.count_parameters(base) - pruning.count_parameters(params)) == n_mgla
  # The encoder's stage-1 feature is the CBL output itself.
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 64, 64, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x, x)
  _, inter = model.apply(variables, x, x, mutable=['intermediates'])
  f1 = inter['intermediates']['encoder_a']['f1'][0]
  cbl = nn_apply_cbl(variables, x)
  np.testing.assert_allclose(np.asarray(f1), np.asarray(cbl), rtol=1e-6, atol=1e-6)


def nn_apply_cbl(variables, x):
  from rrl_jax.models.layers import CBL  # pylint: disable=g-import-not-at-top
  cbl = CBL(SMALL_MODEL['widths'][0])
  v = {'params': variables['params']['encoder_a']['stage1']['cbl'],
       'batch_stats': variables['batch_stats']['encoder_a']['stage1']['cbl']}
  return cbl.apply(v, x, False)


def test_shared_branches_use_one_encoder_and_decoder():
  _, base = _small_params('rrl_net')
  model, params = _small_params('rrl_net:shared_branches')
  assert {'encoder', 'decoder'} <= set(params)
  assert not {'encoder_a', 'encoder_b', 'decoder_a', 'decoder_b'} & set(params)
  n = pruning.count_parameters
  assert n(base) - n(params) == n(base['encoder_b']) + n(base['decoder_b'])
  # Swapping the inputs swaps the reconstructions (one autoencoder for both).
  rng = np.random.default_rng(1)
  xa, xb = (jnp.asarray(rng.uniform(size=(2, 64, 64, 1)), jnp.float32) for _ in range(2))
  variables = model.init(jax.random.PRNGKey(0), xa, xb)
  o1, o2 = model.apply(variables, xa, xb), model.apply(variables, xb, xa)
  np.testing.assert_allclose(np.asarray(o1['recon_a']), np.asarray(o2['recon_b']),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('ablation', sorted(variants.RRL_ABLATIONS))
def test_ablation_score_only_is_the_last_stage_head(ablation):
  model = variants.build(f'rrl_net:{ablation}', reduced=True)
  x = jnp.asarray(np.random.default_rng(2).uniform(size=(2, 64, 64, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x, x)
  np.testing.assert_allclose(
      np.asarray(model.apply(variables, x, 1 - x, score_only=True)),
      np.asarray(model.apply(variables, x, 1 - x)[model.score_output]), rtol=1e-6)
  full = _abstract_variables(model)
  score = _abstract_variables(model, score_only=True)
  assert pruning.count_parameters(score['params']) < pruning.count_parameters(full['params'])


def test_unknown_variant_lists_the_known_ones():
  with pytest.raises(ValueError, match='rrl_net:no_ae'):
    variants.resolve('rrl_net:no_attention')
  with pytest.raises(ValueError, match='known'):
    variants.resolve('fil_net:no_ae')
