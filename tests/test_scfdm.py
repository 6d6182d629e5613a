"""SCFDM: counts and exact parity with the official Keras model (fixtures/keras_baselines/SCFDM)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.models import get_model, model_config, model_from_config
from rrl_jax.models.scfdm import SCFDM, keras_layer_plan

import keras_baselines as kb

pytestmark = pytest.mark.full_optimization

MODEL = SCFDM()
SMALL = dict(widths=(4, 8, 8, 8, 8, 8), head_hidden=(16, 8))


def test_parameter_counts_equal_the_official_model():
  full, score = kb.variable_shapes(MODEL), kb.variable_shapes(MODEL, score_only=True)
  assert pruning.count_parameters(full['params']) == 6_469_122
  assert pruning.count_parameters(full['batch_stats']) == 2_432
  assert pruning.count_parameters(score['params']) == 6_469_122
  assert pruning.count_parameters(score['batch_stats']) == 2_432


def test_registry_and_config_round_trip():
  model = get_model('scfdm', **SMALL)
  cfg = model_config(model)
  assert cfg['model_name'] == 'scfdm' and cfg['widths'] == list(SMALL['widths'])
  assert model_from_config(cfg) == model


def test_keras_plan_covers_every_layer_of_the_table():
  plan = keras_layer_plan(MODEL)
  rows = kb.layer_rows('SCFDM')
  per_type = {}
  for r in rows:
    per_type.setdefault(r['layer_class'], set()).add(r['layer_name'])
  assert len(plan['conv2d']) == len(per_type['Conv2D']) == 6
  assert len(plan['batch_normalization']) == len(per_type['BatchNormalization']) == 6
  assert len(plan['dense']) == len(per_type['Dense']) == 3


@pytest.fixture(scope='module', params=[False, True], ids=['spec', 'alt'])
def run(request):
  alt = request.param
  r = kb.keras_forward(MODEL, keras_layer_plan, 'SCFDM', alt)
  score = jax.jit(lambda v, a, b: pruning.match_probability(MODEL, v, a, b))
  return dict(alt=alt, variables=r['variables'], z=r['ref'], out=r['out'],
              inter=r['inter'], train_out=r['train'],
              score=score(pruning.inference_variables(r['variables'], MODEL),
                          r['xa'], r['xb']))


def _keras_view(out):
  return [np.asarray(jax.nn.softmax(out['match'], -1)), np.asarray(out['cosine'])[:, None]]


def _max_errors(run):
  z = run['z']
  errs = {}
  for prefix, out in (('out', run['out']), ('train_out', run['train_out'])):
    for k, ours in enumerate(_keras_view(out)):
      errs[f'{prefix}{k}'] = float(np.max(np.abs(ours - z[f'{prefix}{k}'])))
  return errs


def test_inference_outputs_match_keras(run):
  errs = _max_errors(run)
  print('SCFDM', 'alt' if run['alt'] else 'spec', errs)
  assert errs['out0'] < 1e-4 and errs['out1'] < 1e-4, errs


def test_training_mode_outputs_match_keras(run):
  errs = _max_errors(run)
  assert errs['train_out0'] < 1e-3 and errs['train_out1'] < 1e-3, errs


def test_score_path_matches_keras_score(run):
  z = run['z']
  np.testing.assert_allclose(np.asarray(run['score']), z['score'], rtol=0, atol=1e-4)
  full = SCFDM.match_probability(run['out'])
  np.testing.assert_allclose(np.asarray(run['score']), np.asarray(full), rtol=0, atol=1e-6)


def test_activations_match_keras(run):
  """The joint-image tower (the a|b seam), the split, the head and the pooled halves."""
  z, inter = run['z'], run['inter']
  pairs = {'re_lu': inter['relu1'], 'max_pooling2d_3': inter['tower'],
           'flatten': inter['flat'], 'dense_1': inter['fc2'],
           'lambda_2': inter['pooled_a'], 'lambda_3': inter['pooled_b']}
  for key, ours in pairs.items():
    want = z[f'act__{key}']
    got = np.asarray(ours[0])
    if want.ndim == 3:  # (N, 1, C) after K.squeeze
      want = want[:, 0]
    if got.ndim == 4 and want.shape != got.shape:  # stored [:2, ..., :2]
      got = got[:2, ..., :2]
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=key)


def test_tower_sees_across_the_seam():
  """Running the tower on a and b separately would not give the Keras map."""
  model = SCFDM(**SMALL)
  rng = np.random.default_rng(1)
  xa = jnp.asarray(rng.random((2, 64, 64, 1)), jnp.float32)
  xb = jnp.asarray(rng.random((2, 64, 64, 1)), jnp.float32)
  v = model.init(jax.random.PRNGKey(0), xa, xb)
  _, inter = model.apply(v, xa, xb, mutable=['intermediates'])
  _, inter_a = model.apply(v, xa, xa, mutable=['intermediates'])
  # The a half's last column (next to the seam) depends on b; its first does not.
  tower, tower_aa = inter['intermediates']['tower'][0], inter_a['intermediates']['tower'][0]
  assert tower.shape[2] == 8
  assert float(jnp.max(jnp.abs(tower[:, :, 3] - tower_aa[:, :, 3]))) > 1e-3
  np.testing.assert_array_equal(np.asarray(tower[:, :, 0]), np.asarray(tower_aa[:, :, 0]))


def test_a_shorter_tower_keeps_its_pools():
  model = SCFDM(widths=(4, 8, 8, 16), head_hidden=(16,))
  x = jnp.zeros((2, 64, 64, 1))
  v = model.init(jax.random.PRNGKey(0), x, x)
  _, inter = model.apply(v, x, x, mutable=['intermediates'])
  assert inter['intermediates']['tower'][0].shape == (2, 8, 16, 16)  # pools after 1, 2, 4
  assert v['params']['dense1']['kernel'].shape == (8 * 8 * 16, 16)


def test_bad_input_is_one_clear_error():
  with pytest.raises(ValueError, match=r'input xb: expected shape \(N, 64, 64, 1\)'):
    SCFDM(**SMALL).init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 1)),
                        jnp.zeros((1, 64, 32, 1)))
