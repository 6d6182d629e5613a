"""MFD-Net: counts and parity with the official Keras build (fixtures/keras_baselines/MFD).

MFD-Net has 151 M parameters. Counts use jax.eval_shape; ONE test
(test_full_width_parity_with_keras, marked FULL WIDTH) runs the official
widths on the fixture's 6 pairs (about 1.8 GB peak, ~50 s per weight variant
on 2 shared CPU cores); every other test uses reduced widths.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_baselines as kb
from rrl_jax.models import mfd_net
from rrl_jax.pruning import count_parameters

pytestmark = [pytest.mark.heavy(seconds=55), pytest.mark.full_optimization]

MODEL = mfd_net.MFDNet()
SMALL = mfd_net.MFDNet(feature_widths=(4, 4, 8, 8, 8), diff_widths=(4, 8, 8, 8, 8, 8),
                       fuse_width=8, head_hidden=(8, 4))
# Our output name -> Keras output index (model.outputs order).
KERAS_INDEX = {name: i for i, name in enumerate(mfd_net.OUTPUT_NAMES)}


def test_parameter_counts_match_official_build():
  full, score = kb.variable_shapes(MODEL), kb.variable_shapes(MODEL, True)
  assert count_parameters(full['params']) == 151_203_717
  assert count_parameters(full['batch_stats']) == 35_328
  assert count_parameters(score['params']) == 104_688_001
  assert count_parameters(score['batch_stats']) == 35_328


def test_keras_layer_graph_matches_fixture():
  """Our description of MFD.py's graph gives graph.tsv's class sequence."""
  want = [r['layer_class'] for r in kb.graph_rows('MFD')]
  assert mfd_net.keras_layer_classes(MODEL) == want


def _check_variant(alt):
  start = time.time()
  run = kb.keras_forward(MODEL, mfd_net.keras_layer_plan, 'MFD', alt)
  ref, variables, inter = run['ref'], run['variables'], run['inter']
  errors = kb.sigmoid_errors(run['out'], ref, 'out', KERAS_INDEX)
  train_errors = kb.sigmoid_errors(run['train'], ref, 'train_out', KERAS_INDEX)
  # The score path alone (score_only on the pruned subtree) gives the fixture score.
  pruned = kb.select(variables, kb.variable_shapes(MODEL, True))
  score = MODEL.match_probability(jax.jit(
      lambda v, a, b: MODEL.apply(v, a, b, score_only=True))(pruned, run['xa'], run['xb']))
  score_error = float(np.abs(np.asarray(score) - ref['score']).max())
  print(f'MFD {"alt" if alt else "spec"}: {time.time() - start:.0f} s; inference '
        f'max|diff| {errors}; training {train_errors}; score {score_error:.1e}')
  assert max(errors.values()) < 1e-4, errors
  assert max(train_errors.values()) < 1e-3, train_errors
  assert score_error < 1e-4
  acts = {
      'conv1': inter['features1']['conv1_out'][0],
      're_lu_40': inter['diff1']['x0'][0],
      'pooling4': inter['features1']['pool4_out'][0],
      'concatenate_20': inter['fuse_input'][0],
      'flatten_4': inter['fused_head']['flatten'][0],
      'dense_38': inter['fused_head']['last_hidden'][0],
  }
  kb.assert_activations(acts, ref, rtol=1e-4, atol=1e-5)


def test_full_width_parity_with_keras():
  """FULL WIDTH (151 M parameters): every output of both fixtures, both modes."""
  for alt in (True, False):
    _check_variant(alt)


def _pairs(n=3):
  xa = jax.random.uniform(jax.random.PRNGKey(1), (n, 64, 64, 1))
  xb = jax.random.uniform(jax.random.PRNGKey(2), (n, 64, 64, 1))
  return xa, xb


@pytest.fixture(scope='module')
def small():
  xa, xb = _pairs()
  variables = jax.jit(SMALL.init)(jax.random.PRNGKey(0), xa, xb)
  return xa, xb, variables


def test_reduced_width_forward_and_score_only(small):
  xa, xb, variables = small
  out = jax.jit(SMALL.apply)(variables, xa, xb)
  assert set(out) == set(mfd_net.OUTPUT_NAMES)  # jit returns dicts key-sorted
  assert all(v.shape == (3,) for v in out.values())
  pruned = kb.select(variables, kb.variable_shapes(SMALL, True))
  assert sorted(pruned['params']) == sorted(
      [f'features{j}' for j in range(1, 9)] + [f'diff{k}' for k in range(1, 5)]
      + ['fuse_conv', 'fuse_bn', 'fused_head'])
  score = jax.jit(lambda v, a, b: SMALL.apply(v, a, b, score_only=True))(pruned, xa, xb)
  np.testing.assert_allclose(np.asarray(score), np.asarray(out['fused']), rtol=0,
                             atol=1e-6)
  np.testing.assert_array_equal(np.asarray(mfd_net.match_probability(out)),
                                np.asarray(jax.nn.sigmoid(out['fused'])))
  out_t, state = jax.jit(lambda v, a, b: SMALL.apply(
      v, a, b, train=True, mutable=['batch_stats']))(variables, xa, xb)
  assert all(np.isfinite(np.asarray(v)).all() for v in out_t.values())
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)),
                                   variables['batch_stats'], state['batch_stats'])
  assert all(jax.tree_util.tree_leaves(changed))


def _conv(x, p):
  return jax.lax.conv_general_dilated(
      x, p['kernel'], (1, 1), 'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + p['bias']


def test_branch_level0_reads_raw_conv1_of_its_pair(small):
  """Pair k = nets (2k-1, 2k) on (a, b); level 0 diffs conv1 + bias, before BN."""
  xa, xb, variables = small
  _, inter = jax.jit(lambda v, a, b: SMALL.apply(v, a, b, mutable=['intermediates']))(
      variables, xa, xb)
  inter, params = inter['intermediates'], variables['params']
  stats = variables['batch_stats']
  for k in range(1, 5):
    raw_a = _conv(xa, params[f'features{2 * k - 1}']['conv1'])
    raw_b = _conv(xb, params[f'features{2 * k}']['conv1'])
    np.testing.assert_allclose(np.asarray(inter[f'features{2 * k}']['conv1_out'][0]),
                               np.asarray(raw_b), atol=1e-5)
    y = _conv(jnp.abs(raw_a - raw_b), params[f'diff{k}']['conv0'])
    bn_p, bn_s = params[f'diff{k}']['bn0'], stats[f'diff{k}']['bn0']
    y = (y - bn_s['mean']) / jnp.sqrt(bn_s['var'] + 1e-3) * bn_p['scale'] + bn_p['bias']
    np.testing.assert_allclose(np.asarray(inter[f'diff{k}']['x0'][0]),
                               np.asarray(jax.nn.relu(y)), atol=1e-5)


def test_keras_layer_plan_round_trip(small):
  """The plan covers every leaf once: Flax -> Keras layers -> Flax is the identity."""
  variables = small[2]
  plan = mfd_net.keras_layer_plan(SMALL)
  assert {t: len(p) for t, p in plan.items()} == {
      'conv2d': 8 * 5 + 4 * 6 + 1, 'batch_normalization': 8 * 5 + 4 * 6 + 1,
      'dense': 5 * 3}
  kb.assert_plan_round_trip(plan, variables, kb.variable_shapes(SMALL))


def test_bad_input_is_one_clear_error():
  x = jnp.zeros((2, 64, 64, 3))
  with pytest.raises(ValueError, match='xa'):
    SMALL.init(jax.random.PRNGKey(0), x, x)
