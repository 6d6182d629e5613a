"""Exact parity with the official Keras RRL-Net (fixtures/keras_rrl)."""
import jax
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.models import RRLNet

pytestmark = pytest.mark.full_optimization

# Our output name -> the fixture's Keras output name.
KERAS_NAMES = {'stage5': 'branch5', 'stage4': 'branch4', 'stage3': 'branch3',
               'module5': 'loss5', 'module4': 'loss4', 'module3': 'loss3',
               'recon_a': 'recon1', 'recon_b': 'recon2'}
MODEL = RRLNet()


def _as_keras(name, value):
  value = np.asarray(value)
  return value if name.startswith('recon') else np.asarray(jax.nn.sigmoid(value))[:, None]


@pytest.fixture(scope='module')
def inference_run(keras_variables, keras_outputs):
  variables, _ = keras_variables
  fn = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, train=False,
                                           mutable=['intermediates']))
  out, inter = fn(variables, keras_outputs['x1'], keras_outputs['x2'])
  return out, inter['intermediates']


@pytest.mark.parametrize('name', list(KERAS_NAMES))
def test_inference_outputs_match_keras(inference_run, keras_outputs, name):
  out, _ = inference_run
  want = keras_outputs['infer_' + KERAS_NAMES[name]]
  np.testing.assert_allclose(_as_keras(name, out[name]), want, rtol=0, atol=1e-4)


def test_logits_match_keras(inference_run, keras_outputs):
  out, _ = inference_run
  for name in ('stage3', 'stage4', 'stage5', 'module3', 'module4', 'module5'):
    want = keras_outputs['logit_' + KERAS_NAMES[name]][:, 0]
    np.testing.assert_allclose(np.asarray(out[name]), want, rtol=0, atol=1e-4)


def test_recon_is_not_half_pixel(inference_run, keras_outputs):
  out, _ = inference_run
  half = keras_outputs['infer_recon1_halfpixel']
  assert np.abs(np.asarray(out['recon_a']) - half).max() > 1e-3


def test_intermediates_match_keras(inference_run, keras_outputs):
  _, inter = inference_run
  pairs = []
  for i in range(1, 6):
    pairs += [(inter['encoder_a'][f'f{i}'], f'mid1_enc_f{i}'),
              (inter['encoder_b'][f'f{i}'], f'mid2_enc_f{i}'),
              (inter['fil'][f'd{i}'], f'mid_ccon{i}'),
              (inter['metric'][f'm{i}'], f'mid_con{i}')]
  for i in (3, 4, 5):
    pairs.append((inter['fil'][f's{i}'], f'mid_loss{i}_add'))
    pairs.append((inter[f'stage_head{i}']['fc256'], f'mid_branch{i}_fc256'))
    pairs.append((inter[f'module_head{i}']['head']['fc256'], f'mid_loss{i}_fc256'))
  for size, name in zip((8, 16, 32, 64), ('d5', 'd4', 'd3', 'd2')):
    pairs.append((inter['decoder_a'][f'd{size}'], f'mid1_dec_{name}'))
    pairs.append((inter['decoder_b'][f'd{size}'], f'mid2_dec_{name}'))
  for ours, key in pairs:
    want = keras_outputs[key]
    got = np.asarray(ours[0])[:want.shape[0]]
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * scale, err_msg=key)


def test_training_mode_outputs_match_keras(keras_variables, keras_outputs):
  variables, _ = keras_variables
  fn = jax.jit(lambda v, a, b: MODEL.apply(v, a, b, train=True,
                                           mutable=['batch_stats'])[0])
  out = fn(variables, keras_outputs['x1'], keras_outputs['x2'])
  for name, keras_name in KERAS_NAMES.items():
    want = keras_outputs['trainmode_' + keras_name]
    np.testing.assert_allclose(_as_keras(name, out[name]), want, rtol=0,
                               atol=1e-3, err_msg=name)


def test_pruned_score_equals_full_model_and_keras(keras_variables, keras_outputs,
                                                  inference_run):
  variables, _ = keras_variables
  pruned = pruning.inference_variables(variables)
  score = jax.jit(lambda v, a, b: pruning.match_probability(MODEL, v, a, b))(
      pruned, keras_outputs['x1'], keras_outputs['x2'])
  full_score = jax.nn.sigmoid(inference_run[0]['stage5'])
  np.testing.assert_allclose(np.asarray(score), np.asarray(full_score),
                             rtol=0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(score)[:, None], keras_outputs['test_out'],
                             rtol=0, atol=1e-4)
