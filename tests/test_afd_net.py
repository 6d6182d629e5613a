"""AFD-Net: counts and parity with the official Keras model (fixtures/keras_baselines/AFD)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax import keras_import
from rrl_jax.models import afd_net
from rrl_jax.models.afd_net import AFDNet, ConvBNReLU, InstanceNorm
from rrl_jax.pruning import count_parameters

MODEL = AFDNet()
SMALL = AFDNet(widths=(4, 8, 8, 16), head_hidden=(16, 8))
# Our output name -> Keras output index (out<i>, train_out<i>).
KERAS_OUTPUTS = {'multi': 0, 'single': 1}
VARIANTS = pytest.mark.parametrize('alt', [False, True], ids=['spec', 'alt'])
_X = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)


def _shapes(model, score_only=False):
  return jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                score_only=score_only), _X, _X)


def test_parameter_counts_equal_the_official_model():
  full, score = _shapes(MODEL), _shapes(MODEL, score_only=True)
  assert count_parameters(full['params']) == 8_247_820
  assert count_parameters(full['batch_stats']) == 7_808
  assert count_parameters(score['params']) == 6_672_138
  assert count_parameters(score['batch_stats']) == 6_784


_RUNS = {}


def _run(alt):
  """(inference outputs, intermediates, training outputs, score_only z, fixture)."""
  if alt not in _RUNS:
    inputs = kb.load_outputs('AFD', alt=False)  # the inputs live in outputs.npz
    xa, xb = inputs['x_a'], inputs['x_b']
    variables = kb.keras_variables(MODEL, afd_net.keras_layer_plan, 'AFD', alt)
    infer = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, mutable=['intermediates']))
    train = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, train=True,
                                                mutable=['batch_stats'])[0])
    score = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, score_only=True))
    out, inter = infer(variables, xa, xb)
    _RUNS[alt] = (out, inter['intermediates'], train(variables, xa, xb),
                  score(variables, xa, xb), kb.load_outputs('AFD', alt))
  return _RUNS[alt]


def _softmax(logits):
  return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_inference_outputs_match_keras(alt, name):
  out, _, _, _, want = _run(alt)
  np.testing.assert_allclose(_softmax(out[name]), want[f'out{KERAS_OUTPUTS[name]}'],
                             rtol=0, atol=1e-4)


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_training_mode_outputs_match_keras(alt, name):
  _, _, train_out, _, want = _run(alt)
  np.testing.assert_allclose(_softmax(train_out[name]),
                             want[f'train_out{KERAS_OUTPUTS[name]}'], rtol=0, atol=1e-3)


@VARIANTS
def test_score_path_equals_keras_score(alt):
  out, _, _, z, want = _run(alt)
  prob = np.asarray(AFDNet.match_probability(z))
  np.testing.assert_allclose(prob, np.asarray(AFDNet.match_probability(out)),
                             rtol=0, atol=1e-6)
  np.testing.assert_allclose(prob, want['score'], rtol=0, atol=1e-4)


def test_score_only_touches_only_the_score_path():
  """The score_only subtree alone (no out1 head) computes the score."""
  out, _, _, z, _ = _run(True)
  variables = kb.keras_variables(MODEL, afd_net.keras_layer_plan, 'AFD', True)
  template = _shapes(MODEL, score_only=True)
  pruned = {c: {k: variables[c][k] for k in template[c]} for c in template}
  assert 'single_head' not in pruned['params'] and 'single_cbr' not in pruned['params']
  inputs = kb.load_outputs('AFD', alt=False)
  z2 = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, score_only=True))(
      pruned, inputs['x_a'], inputs['x_b'])
  np.testing.assert_array_equal(np.asarray(z2), np.asarray(z))


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
  _, inter, _, _, want = _run(alt)
  for key, path in ACTIVATIONS.items():
    ours = inter
    for p in path:
      ours = ours[p]
    ours = np.asarray(ours[0])
    ref = want[f'act__{key}']
    if ours.shape != ref.shape:  # stored as [:2, ..., :2]
      ours = ours[:2, ..., :2]
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * scale, err_msg=key)


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
      lambda s: rng.uniform(0.5, 1.0, s.shape).astype(np.float32), _shapes(SMALL))
  plan = afd_net.keras_layer_plan(SMALL)
  layers = keras_import.variables_to_layers(plan, variables)
  back = keras_import.layers_to_variables(plan, layers, variables)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, dict(variables))
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
