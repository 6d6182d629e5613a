"""FIL-Net: counts and parity with the official Keras build (fixtures/keras_baselines/FIL)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax.models import fil_net
from rrl_jax.pruning import count_parameters

pytestmark = pytest.mark.full_optimization

MODEL = fil_net.FILNet()
SMALL = fil_net.FILNet(widths=(4, 4, 8, 8, 8), metric_widths=(4, 8, 8, 8, 8),
                       head_hidden=(8, 4))
# Our output name -> Keras output index (model.outputs order).
KERAS_INDEX = {name: i for i, name in enumerate(fil_net.OUTPUT_NAMES)}


def test_parameter_counts_match_official_build():
  full, score = kb.variable_shapes(MODEL), kb.variable_shapes(MODEL, True)
  assert count_parameters(full['params']) == 33_046_982
  assert count_parameters(full['batch_stats']) == 21_760
  assert count_parameters(score['params']) == 30_212_929
  assert count_parameters(score['batch_stats']) == 19_968


def test_keras_layer_graph_matches_fixture():
  """Our description of FIL.py's graph gives graph.tsv's class sequence."""
  want = [r['layer_class'] for r in kb.graph_rows('FIL')]
  assert fil_net.keras_layer_classes(MODEL) == want


@pytest.mark.parametrize('swap', [False, True])
def test_keras_graph_orders_by_depth_then_discovery(swap):
  """Keras model.layers order: deepest first; ties by depth-first discovery
  from the outputs, inputs in call order (here: the concatenation order)."""
  g = fil_net.KerasGraph()
  i = g.add('InputLayer')
  a = g.add('Conv2D', i, path=('a',))
  b1 = g.add('BatchNormalization', a, path=('b1',))
  b2 = g.add('ReLU', b1)
  c = g.add('Dense', a, path=('c',))
  cat = g.add('Concatenate', *((c, b2) if swap else (b2, c)))
  out = g.add('Dense', cat, path=('out',))
  middle = [c, b2] if swap else [b2, c]
  assert g.layer_order([out]) == [i, a, b1] + middle + [cat, out]
  assert g.plan([out]) == {'conv2d': [('a',)], 'batch_normalization': [('b1',)],
                           'dense': [('c',), ('out',)]}


@pytest.fixture(scope='module', params=[True, False], ids=['alt', 'spec'])
def run(request):
  """(fixture outputs, variables, inference outputs + intermediates, training outputs)."""
  return kb.keras_forward(MODEL, fil_net.keras_layer_plan, 'FIL', request.param)


def test_inference_outputs_match_keras(run):
  errors = kb.sigmoid_errors(run['out'], run['ref'], 'out', KERAS_INDEX)
  print('FIL inference max|diff|', errors)
  assert max(errors.values()) < 1e-4, errors


def test_training_mode_outputs_match_keras(run):
  errors = kb.sigmoid_errors(run['train'], run['ref'], 'train_out', KERAS_INDEX)
  print('FIL training-mode max|diff|', errors)
  assert max(errors.values()) < 1e-3, errors


def test_score_path_matches_keras_score(run):
  """score_only on the full variables and on the score-path subtree alone."""
  ref, variables = run['ref'], run['variables']
  logit = MODEL.apply(variables, run['xa'], run['xb'], score_only=True)
  np.testing.assert_allclose(MODEL.match_probability(logit), ref['score'],
                             rtol=0, atol=1e-4)
  template = kb.variable_shapes(MODEL, True)
  pruned = kb.select(variables, template)
  assert count_parameters(pruned['params']) == count_parameters(template['params'])
  logit2 = MODEL.apply(pruned, run['xa'], run['xb'], score_only=True)
  np.testing.assert_array_equal(np.asarray(logit2), np.asarray(logit))
  # The jitted full forward rounds differently from this eager one.
  np.testing.assert_allclose(np.asarray(logit), np.asarray(run['out']['stage5']),
                             rtol=0, atol=1e-6)
  np.testing.assert_allclose(fil_net.match_probability(run['out']), ref['score'],
                             rtol=0, atol=1e-4)


def test_activations_match_keras(run):
  inter, ref = run['inter'], run['ref']
  pairs = {
      'leaky_re_lu': inter['encoder_a']['stem1_out'][0],
      'add': inter['encoder_a']['block2']['sum'][0],
      'concatenate': inter['fil']['d1'][0],
      'leaky_re_lu_53': inter['metric']['m4'][0],
      'global_average_pooling2d_5': jnp.mean(inter['metric']['m5'][0], axis=(1, 2)),
      'dense_16': inter['stage_head5']['fc256'][0],
  }
  kb.assert_activations(pairs, ref, rtol=1e-4, atol=1e-5)


def test_reduced_width_forward_and_score_only():
  xa = jax.random.uniform(jax.random.PRNGKey(1), (3, 64, 64, 1))
  xb = jax.random.uniform(jax.random.PRNGKey(2), (3, 64, 64, 1))
  variables = SMALL.init(jax.random.PRNGKey(0), xa, xb)
  out = SMALL.apply(variables, xa, xb)
  assert tuple(out) == fil_net.OUTPUT_NAMES
  assert all(v.shape == (3,) for v in out.values())
  score = SMALL.apply(variables, xa, xb, score_only=True)
  np.testing.assert_array_equal(np.asarray(score), np.asarray(out[SMALL.score_output]))
  out_t, state = SMALL.apply(variables, xa, xb, train=True, mutable=['batch_stats'])
  assert set(state['batch_stats']) == set(variables['batch_stats'])
  assert all(np.isfinite(np.asarray(v)).all() for v in out_t.values())


def test_bad_input_is_one_clear_error():
  x = jnp.zeros((2, 32, 32, 1))
  with pytest.raises(ValueError, match='xa'):
    SMALL.init(jax.random.PRNGKey(0), x, x)
