"""EFR-Net: counts and parity with the official Keras model (fixtures/keras_baselines/EFR)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax import keras_import
from rrl_jax.models import efr_net
from rrl_jax.models.efr_net import ECA3, EFRNet
from rrl_jax.pruning import count_parameters

MODEL = EFRNet()
SMALL = EFRNet(widths=(4, 8, 8, 16), head_hidden=(16, 8))
# Our output name -> Keras output index (out<i>, train_out<i>).
KERAS_OUTPUTS = {'cat': 0, 'sub': 1, 'mul': 2}
VARIANTS = pytest.mark.parametrize('alt', [False, True], ids=['spec', 'alt'])
_X = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)


def _shapes(model, score_only=False):
  return jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                score_only=score_only), _X, _X)


def test_parameter_counts_equal_the_official_model():
  full, score = _shapes(MODEL), _shapes(MODEL, score_only=True)
  assert count_parameters(full['params']) == 9_157_187
  assert count_parameters(full['batch_stats']) == 9_728
  assert count_parameters(score['params']) == 8_630_849
  assert count_parameters(score['batch_stats']) == 9_728


_RUNS = {}


def _inputs():
  inputs = kb.load_outputs('EFR', alt=False)  # the inputs live in outputs.npz
  return inputs['x_a'], inputs['x_b']


def _run(alt):
  """(inference outputs, intermediates, training outputs, score_only logit, fixture)."""
  if alt not in _RUNS:
    xa, xb = _inputs()
    variables = kb.keras_variables(MODEL, efr_net.keras_layer_plan, 'EFR', alt)
    infer = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, mutable=['intermediates']))
    train = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, train=True,
                                                mutable=['batch_stats'])[0])
    score = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, score_only=True))
    out, inter = infer(variables, xa, xb)
    _RUNS[alt] = (out, inter['intermediates'], train(variables, xa, xb),
                  score(variables, xa, xb), kb.load_outputs('EFR', alt))
  return _RUNS[alt]


def _sigmoid(logits):
  return np.asarray(jax.nn.sigmoid(jnp.asarray(logits)))[:, None]


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_inference_outputs_match_keras(alt, name):
  out, _, _, _, want = _run(alt)
  np.testing.assert_allclose(_sigmoid(out[name]), want[f'out{KERAS_OUTPUTS[name]}'],
                             rtol=0, atol=1e-4)


@VARIANTS
@pytest.mark.parametrize('name', list(KERAS_OUTPUTS))
def test_training_mode_outputs_match_keras(alt, name):
  _, _, train_out, _, want = _run(alt)
  np.testing.assert_allclose(_sigmoid(train_out[name]),
                             want[f'train_out{KERAS_OUTPUTS[name]}'], rtol=0, atol=1e-3)


@VARIANTS
def test_score_path_equals_keras_score(alt):
  out, _, _, z, want = _run(alt)
  prob = np.asarray(EFRNet.match_probability(z))
  np.testing.assert_allclose(prob, np.asarray(EFRNet.match_probability(out)),
                             rtol=0, atol=1e-6)
  np.testing.assert_allclose(prob, want['score'], rtol=0, atol=1e-4)


def test_score_only_touches_only_the_score_path():
  """The score_only subtree alone (no sub/mul heads) computes the score."""
  _, _, _, z, _ = _run(True)
  variables = kb.keras_variables(MODEL, efr_net.keras_layer_plan, 'EFR', True)
  template = _shapes(MODEL, score_only=True)
  pruned = {c: {k: variables[c][k] for k in template[c]} for c in template}
  assert 'sub_head' not in pruned['params'] and 'mul_head' not in pruned['params']
  z2 = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, score_only=True))(
      pruned, *_inputs())
  np.testing.assert_array_equal(np.asarray(z2), np.asarray(z))


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
  _, inter, _, _, want = _run(alt)
  for key, (path, transform) in ACTIVATIONS.items():
    ours = inter
    for p in path:
      ours = ours[p]
    ours = np.asarray(ours[0])
    if transform is not None:
      ours = transform(ours)
    ref = want[f'act__{key}']
    if ours.shape != ref.shape:  # stored as [:2, ..., :2]
      ours = ours[:2, ..., :2]
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * scale, err_msg=key)


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
      lambda s: rng.uniform(0.5, 1.0, s.shape).astype(np.float32), _shapes(SMALL))
  plan = efr_net.keras_layer_plan(SMALL)
  layers = keras_import.variables_to_layers(plan, variables)
  back = keras_import.layers_to_variables(plan, layers, variables)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, dict(variables))
  out, z = jax.jit(lambda v, a, b: (SMALL.apply(v, a, b),
                                    SMALL.apply(v, a, b, score_only=True)))(back, x, x)
  assert set(out) == {'cat', 'sub', 'mul'}
  assert all(v.shape == (2,) for v in out.values())
  np.testing.assert_allclose(z, out['cat'], atol=1e-6)


def test_bad_input_is_one_clear_error():
  x = jnp.zeros((2, 64, 64, 3))
  with pytest.raises(ValueError, match=r'xb.*\(N, 64, 64, 1\)'):
    SMALL.init(jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 1)), x)
