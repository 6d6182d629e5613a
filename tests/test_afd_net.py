"""AFD-Net: counts and parity with the official Keras model (fixtures/keras_baselines/AFD)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax.models import afd_net
from rrl_jax.models.afd_net import AFDNet, ConvBNReLU, InstanceNorm
from rrl_jax.pruning import count_parameters

pytestmark = pytest.mark.full_optimization

MODEL = AFDNet()
SMALL = AFDNet(widths=(4, 8, 8, 16), head_hidden=(16, 8))
# Our output name -> Keras output index (out<i>, train_out<i>).
KERAS_OUTPUTS = {'multi': 0, 'single': 1}
VARIANTS = pytest.mark.parametrize('alt', [False, True], ids=['spec', 'alt'])


def test_parameter_counts_equal_the_official_model():
  full, score = kb.variable_shapes(MODEL), kb.variable_shapes(MODEL, score_only=True)
  assert count_parameters(full['params']) == 8_247_820
  assert count_parameters(full['batch_stats']) == 7_808
  assert count_parameters(score['params']) == 6_672_138
  assert count_parameters(score['batch_stats']) == 6_784


def _run(alt):
  return kb.keras_forward(MODEL, afd_net.keras_layer_plan, 'AFD', alt, score_only=True)


def _softmax(logits):
  return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_inference_outputs_match_keras(alt, name):
  kb.assert_output_matches(_run(alt), name, KERAS_OUTPUTS, _softmax)


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_training_mode_outputs_match_keras(alt, name):
  kb.assert_output_matches(_run(alt), name, KERAS_OUTPUTS, _softmax, train=True)


@VARIANTS
def test_score_path_equals_keras_score(alt):
  kb.assert_score_matches(AFDNet, _run(alt))


def test_score_only_touches_only_the_score_path():
  """The score_only subtree alone (no out1 head) computes the score."""
  run = _run(True)
  pruned, z = kb.score_path_only(MODEL, run)
  assert 'single_head' not in pruned['params'] and 'single_cbr' not in pruned['params']
  np.testing.assert_array_equal(np.asarray(z), np.asarray(run['z']))


# Keras activation name -> our intermediate (all of net a / the out0 head).
ACTIVATIONS = {
    'relu1': ('features_a', 'tap1'), 'relu2': ('features_a', 'down1'),
    'in1': ('features_a', 'norm1'), 'relu3': ('features_a', 'tap2'),
    'relu10': ('features_a', 'tap5'), 'concatenate_3': ('concat_last',),
    'flatten': ('multi_head', 'flatten'), 'dense_1': ('multi_head', 'fc256'),
}


@VARIANTS
def test_activations_match_keras(alt):
  """Layer by layer: stride-2 padding (relu2), IN (in1), concat order (concatenate_3)."""
  run = _run(alt)
  inter, want = run['inter'], run['ref']
  ours = {}
  for key, path in ACTIVATIONS.items():
    ours[key] = inter
    for p in path:
      ours[key] = ours[key][p]
    ours[key] = ours[key][0]
  kb.assert_activations(ours, want, rtol=0, atol=1e-4, scaled=True)


def test_stride2_same_pads_bottom_right_only():
  """TF 'same' at stride 2 on even sizes: 0 rows/cols before, 1 after."""
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3))
  block = ConvBNReLU(4, stride=2)
  variables = block.init(jax.random.PRNGKey(2), x, False)
  got = block.apply(variables, x, False)
  kernel = variables['params']['conv']['kernel']

  def reference(pads):
    y = jax.lax.conv_general_dilated(x, kernel, (2, 2), pads,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    y = y + variables['params']['conv']['bias']
    bn = variables['params']['bn']
    stats = variables['batch_stats']['bn']
    y = (y - stats['mean']) / jnp.sqrt(stats['var'] + 1e-3) * bn['scale'] + bn['bias']
    return jnp.maximum(y, 0)

  np.testing.assert_allclose(got, reference(((0, 1), (0, 1))), atol=1e-5)
  assert np.abs(got - reference(((1, 1), (1, 1)))).max() > 1e-2


def test_instance_norm_is_whole_map_with_epsilon_on_std():
  # Small spread (std ~0.02, so the epsilon form matters); channels differ in mean.
  x = (jax.random.normal(jax.random.PRNGKey(3), (3, 4, 5, 6)) * 0.01 + 0.3
       + 0.01 * jnp.arange(6, dtype=jnp.float32))
  layer = InstanceNorm()
  variables = {'params': {'scale': jnp.array([1.3]), 'bias': jnp.array([-0.2])}}
  got = np.asarray(layer.apply(variables, x))
  xn = np.asarray(x, np.float64)
  mean = xn.mean(axis=(1, 2, 3), keepdims=True)
  std = xn.std(axis=(1, 2, 3), keepdims=True)  # population std
  np.testing.assert_allclose(got, (xn - mean) / (std + 1e-3) * 1.3 - 0.2, rtol=1e-4,
                             atol=1e-5)
  # Not the variance-epsilon form: the stds here are small enough to tell apart.
  assert np.abs(got - ((xn - mean) / np.sqrt(std**2 + 1e-3) * 1.3 - 0.2)).max() > 1e-1
  # Nor per-channel statistics.
  per_channel = (xn - xn.mean((1, 2), keepdims=True)) / (xn.std((1, 2), keepdims=True) + 1e-3)
  assert np.abs(got - (per_channel * 1.3 - 0.2)).max() > 1e-1
  assert layer.init(jax.random.PRNGKey(0), x)['params']['scale'].shape == (1,)


def test_match_probability_is_softmax_class_one():
  logits = jnp.array([[0.3, -1.2], [2.0, 2.5], [-0.1, 0.0]])
  want = _softmax(logits)[:, 1]
  np.testing.assert_allclose(AFDNet.match_probability({'multi': logits}), want,
                             atol=1e-7)
  np.testing.assert_allclose(AFDNet.match_probability(logits[:, 1] - logits[:, 0]),
                             want, atol=1e-6)


def test_reduced_width_plan_round_trips_and_runs():
  x = jnp.full((2, 64, 64, 1), 0.5)
  rng = np.random.default_rng(0)  # random values in the model's shapes (no init compile)
  variables = jax.tree_util.tree_map(
      lambda s: rng.uniform(0.5, 1.0, s.shape).astype(np.float32),
      kb.variable_shapes(SMALL))
  back = kb.assert_plan_round_trip(afd_net.keras_layer_plan(SMALL), variables)
  out, z = jax.jit(lambda v, a, b: (SMALL.apply(v, a, b),
                                    SMALL.apply(v, a, b, score_only=True)))(back, x, x)
  assert set(out) == {'multi', 'single'}
  assert out['multi'].shape == (2, 2) and out['single'].shape == (2, 2)
  np.testing.assert_allclose(AFDNet.match_probability(z),
                             AFDNet.match_probability(out), atol=1e-6)


def test_bad_input_is_one_clear_error():
  x = jnp.zeros((2, 32, 32, 1))
  with pytest.raises(ValueError, match=r'xa.*\(N, 64, 64, 1\)'):
    SMALL.init(jax.random.PRNGKey(0), x, x)
