"""EFR-Net: counts and parity with the official Keras model (fixtures/keras_baselines/EFR)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax.models import efr_net
from rrl_jax.models.efr_net import ECA3, EFRNet
from rrl_jax.pruning import count_parameters

pytestmark = pytest.mark.full_optimization

MODEL = EFRNet()
SMALL = EFRNet(widths=(4, 8, 8, 16), head_hidden=(16, 8))
# Our output name -> Keras output index (out<i>, train_out<i>).
KERAS_OUTPUTS = {'cat': 0, 'sub': 1, 'mul': 2}
VARIANTS = pytest.mark.parametrize('alt', [False, True], ids=['spec', 'alt'])


def test_parameter_counts_equal_the_official_model():
  full, score = kb.variable_shapes(MODEL), kb.variable_shapes(MODEL, score_only=True)
  assert count_parameters(full['params']) == 9_157_187
  assert count_parameters(full['batch_stats']) == 9_728
  assert count_parameters(score['params']) == 8_630_849
  assert count_parameters(score['batch_stats']) == 9_728


def _run(alt):
  return kb.keras_forward(MODEL, efr_net.keras_layer_plan, 'EFR', alt, score_only=True)


def _sigmoid(logits):
  return np.asarray(jax.nn.sigmoid(jnp.asarray(logits)))[:, None]


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_inference_outputs_match_keras(alt, name):
  kb.assert_output_matches(_run(alt), name, KERAS_OUTPUTS, _sigmoid)


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_training_mode_outputs_match_keras(alt, name):
  kb.assert_output_matches(_run(alt), name, KERAS_OUTPUTS, _sigmoid, train=True)


@VARIANTS
def test_score_path_equals_keras_score(alt):
  kb.assert_score_matches(EFRNet, _run(alt))


def test_score_only_touches_only_the_score_path():
  """The score_only subtree alone (no sub/mul heads) computes the score."""
  run = _run(True)
  pruned, z = kb.score_path_only(MODEL, run)
  assert 'sub_head' not in pruned['params'] and 'mul_head' not in pruned['params']
  np.testing.assert_array_equal(np.asarray(z), np.asarray(run['z']))


def _gap(x):
  return x.mean(axis=(1, 2))


# Keras activation name -> (our intermediate path in net 1 / the heads, transform).
ACTIVATIONS = {
    'leaky_re_lu': (('features1', 'cbl1_out1'), None),
    'activation': (('features1', 'block1_eca', 'gate_h'), lambda g: g[..., None]),
    'activation_1': (('features1', 'block1_eca', 'gate_w'), lambda g: g[..., None]),
    'activation_2': (('features1', 'block1_eca', 'gate_c'), lambda g: g[..., None]),
    'multiply': (('features1', 'gated1'), None),
    'multiply_3': (('features1', 'gated4'), None),
    'multiply_16': (('product',), None),
    'global_average_pooling2d_50': (('cat',), _gap),
    'dense_7': (('cat_head', 'fc256'), None),
}


@VARIANTS
def test_activations_match_keras(alt):
  """Layer by layer: the h/w/c gates (axes, order), the gated maps, f3 * f4, the cat head."""
  run = _run(alt)
  inter, want = run['inter'], run['ref']
  ours = {}
  for key, (path, transform) in ACTIVATIONS.items():
    ours[key] = inter
    for p in path:
      ours[key] = ours[key][p]
    ours[key] = np.asarray(ours[key][0])
    if transform is not None:
      ours[key] = transform(ours[key])
  kb.assert_activations(ours, want, rtol=0, atol=1e-4, scaled=True)


def _conv1d_same(desc, kernel, bias):
  """Keras Conv1D(1, k, 'same') on (N, L) descriptors, k odd: cross-correlation."""
  k = kernel.shape[0]
  padded = np.pad(desc, ((0, 0), (k // 2, k // 2)))
  out = sum(padded[:, j:j + desc.shape[1]] * kernel[j, 0, 0] for j in range(k))
  return 1 / (1 + np.exp(-(out + bias[0])))


def test_eca_gates_mean_over_the_other_two_axes():
  x = jax.random.uniform(jax.random.PRNGKey(4), (2, 4, 8, 16))
  layer = ECA3()
  variables = layer.init(jax.random.PRNGKey(5), x)
  params = jax.tree_util.tree_map(np.asarray, variables['params'])
  # Kernel sizes from the official rule: H=4 -> 1, W=8 -> 3, C=16 -> 3.
  assert [params[g]['conv1d']['kernel'].shape[0]
          for g in ('height', 'width', 'channel')] == [1, 3, 3]
  xn = np.asarray(x, np.float64)
  gates = {g: _conv1d_same(xn.mean(axis=axes), params[g]['conv1d']['kernel'],
                           params[g]['conv1d']['bias'])
           for g, axes in (('height', (2, 3)), ('width', (1, 3)), ('channel', (1, 2)))}
  want = (xn * gates['height'][:, :, None, None] * gates['width'][:, None, :, None]
          * gates['channel'][:, None, None, :])
  np.testing.assert_allclose(np.asarray(layer.apply(variables, x)), want, rtol=1e-5,
                             atol=1e-6)


def test_match_probability_is_sigmoid_of_cat():
  logits = jnp.array([0.3, -1.2, 2.0])
  want = np.asarray(jax.nn.sigmoid(logits))
  np.testing.assert_allclose(EFRNet.match_probability({'cat': logits}), want, atol=1e-7)
  np.testing.assert_allclose(EFRNet.match_probability(logits), want, atol=1e-7)


def test_reduced_width_plan_round_trips_and_runs():
  x = jnp.full((2, 64, 64, 1), 0.5)
  rng = np.random.default_rng(0)  # random values in the model's shapes (no init compile)
  variables = jax.tree_util.tree_map(
      lambda s: rng.uniform(0.5, 1.0, s.shape).astype(np.float32),
      kb.variable_shapes(SMALL))
  back = kb.assert_plan_round_trip(efr_net.keras_layer_plan(SMALL), variables)
  out, z = jax.jit(lambda v, a, b: (SMALL.apply(v, a, b),
                                    SMALL.apply(v, a, b, score_only=True)))(back, x, x)
  assert set(out) == {'cat', 'sub', 'mul'}
  assert all(v.shape == (2,) for v in out.values())
  np.testing.assert_allclose(z, out['cat'], atol=1e-6)


def test_bad_input_is_one_clear_error():
  x = jnp.zeros((2, 64, 64, 3))
  with pytest.raises(ValueError, match=r'xb.*\(N, 64, 64, 1\)'):
    SMALL.init(jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 1)), x)
