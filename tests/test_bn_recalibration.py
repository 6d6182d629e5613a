"""Precise BN: population statistics over K batches, on any device count."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.training import bn_recalibration
from rrl_jax.training.augment import default_augment_config
from rrl_jax.models import RRLNet
from rrl_jax.training.step import make_mesh
from tests.conftest import SMALL_MODEL
from tests.train_helpers import cpu_devices_env, run_python

pytestmark = pytest.mark.heavy(seconds=125)

MODEL = RRLNet(**SMALL_MODEL)


@pytest.fixture(scope='module')
def setup():
  x = jnp.zeros((2, 64, 64, 1))
  variables = jax.device_get(MODEL.init(jax.random.key(0), x, x, train=True))
  rng = np.random.default_rng(0)
  batches = [{'xa': rng.integers(0, 256, (8, 64, 64, 1), dtype=np.uint8),
              'xb': rng.integers(0, 256, (8, 64, 64, 1), dtype=np.uint8),
              'label': np.zeros(8, np.int32)} for _ in range(3)]
  return variables, batches


def ema_recovered_moments(variables, batch):
  """Batch mean and unbiased variance read back from one moving-average update.

  From zero moving statistics, Keras' update leaves (1 - momentum) x the batch
  moments: an independent route to what recalibrate averages.
  """
  zeros = jax.tree.map(np.zeros_like, variables['batch_stats'])
  xa = batch['xa'].astype(np.float32) / 255.0
  xb = batch['xb'].astype(np.float32) / 255.0
  _, new = MODEL.apply({'params': variables['params'], 'batch_stats': zeros},
                       xa, xb, train=True, mutable=['batch_stats'])
  return jax.tree.map(lambda v: np.asarray(v, np.float64) / 0.01, new['batch_stats'])


def test_statistics_are_the_mean_of_the_batch_moments(setup):
  variables, batches = setup
  got = bn_recalibration.recalibrate(MODEL, variables, batches, make_mesh(1))
  per_batch = [ema_recovered_moments(variables, b) for b in batches]
  want = jax.tree.map(lambda *xs: np.mean(xs, 0), *per_batch)
  assert jax.tree.structure(got) == jax.tree.structure(
      jax.tree.map(np.asarray, variables['batch_stats']))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
  # Not the initial statistics (mean 0, variance 1), and the variance is unbiased.
  enc = got['encoder_a']
  first = jax.tree.leaves(enc)[0]
  assert np.max(np.abs(first)) > 1e-3


def test_num_batches_and_errors(setup):
  variables, batches = setup
  two = bn_recalibration.recalibrate(MODEL, variables, iter(batches), make_mesh(1),
                                     num_batches=2)
  again = bn_recalibration.recalibrate(MODEL, variables, batches[:2], make_mesh(1))
  for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='no batches'):
    bn_recalibration.recalibrate(MODEL, variables, [], make_mesh(1))
  with pytest.raises(ValueError, match='asked for 5 batches'):
    bn_recalibration.recalibrate(MODEL, variables, batches, make_mesh(1), num_batches=5)


def test_augmentation_is_applied_and_seeded(setup):
  variables, batches = setup
  mesh = make_mesh(1)
  cfg = default_augment_config()
  plain = bn_recalibration.recalibrate(MODEL, variables, batches, mesh)
  aug1 = bn_recalibration.recalibrate(MODEL, variables, batches, mesh, augment_cfg=cfg,
                                      rng=jax.random.key(3))
  aug2 = bn_recalibration.recalibrate(MODEL, variables, batches, mesh, augment_cfg=cfg,
                                      rng=jax.random.key(3))
  diff = max(float(np.max(np.abs(a - b))) for a, b in
             zip(jax.tree.leaves(plain), jax.tree.leaves(aug1)))
  assert diff > 1e-3
  for a, b in zip(jax.tree.leaves(aug1), jax.tree.leaves(aug2)):
    np.testing.assert_array_equal(a, b)


def test_pruned_variables_recalibrate_the_inference_subtree(setup):
  variables, batches = setup
  mesh = make_mesh(1)
  full = bn_recalibration.recalibrate(MODEL, variables, batches, mesh)
  pruned_vars = pruning.inference_variables(variables, MODEL)
  pruned = bn_recalibration.recalibrate(MODEL, pruned_vars, batches, mesh)
  assert set(pruned) == set(pruned_vars['batch_stats'])
  for a, b in zip(jax.tree.leaves(pruned),
                  jax.tree.leaves({k: full[k] for k in pruned})):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_settings_auto_follow_the_protocol():
  from configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  assert c.bn_recalibration.batches == -1
  assert bn_recalibration.settings(c) == {'batches': 16, 'batch_size': 64,
                                          'augment': False,
                                          'moving_average': 'zero_debiased',
                                          'model_name': 'rrl_net'}
  c.protocol = 'paper'
  assert bn_recalibration.settings(c)['batches'] == 0
  # Moving averages scored: the reports name the rule they were kept by.
  assert bn_recalibration.describe(bn_recalibration.settings(c)) == (
      'BatchNorm moving averages (momentum 0.99, zero-debiased as Keras 2.2 on TF 1.x)')
  c.bn_moving_average = 'plain'
  assert 'plain average from 0 / 1' in bn_recalibration.describe(
      bn_recalibration.settings(c))
  c.bn_moving_average = 'zero_debiased'
  # KGL-Net's BatchNorm is PyTorch's: its running statistics are named as such.
  kgl = default.get_config('kgl_net')
  kgl.protocol = 'paper'
  assert bn_recalibration.describe(bn_recalibration.settings(kgl)) == (
      'PyTorch BatchNorm running statistics (momentum 0.1)')
  # The official training recipe does not decide the statistics: the protocol does.
  default.apply_paper_protocol(c)
  c.protocol = 'clean'
  assert bn_recalibration.settings(c)['batches'] == 16


SCRIPT = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
assert jax.device_count() == 4, jax.devices()
from rrl_jax.training import bn_recalibration
from rrl_jax.training.augment import default_augment_config
from rrl_jax.models import RRLNet
from rrl_jax.training.step import make_mesh
from tests.conftest import SMALL_MODEL
model = RRLNet(**SMALL_MODEL)
x = jnp.zeros((2, 64, 64, 1))
variables = jax.device_get(model.init(jax.random.key(0), x, x, train=True))
rng = np.random.default_rng(1)
batches = [{'xa': rng.integers(0, 256, (8, 64, 64, 1), dtype=np.uint8),
            'xb': rng.integers(0, 256, (8, 64, 64, 1), dtype=np.uint8)}
           for _ in range(3)]
out = {}
for aug in (False, True):
  stats = {n: bn_recalibration.recalibrate(
      model, variables, batches, make_mesh(n),
      augment_cfg=default_augment_config() if aug else None,
      rng=jax.random.key(5)) for n in (1, 4)}
  out[f'aug{int(aug)}'] = max(float(np.max(np.abs(a.astype(np.float64) - b)))
                              for a, b in zip(jax.tree.leaves(stats[1]),
                                              jax.tree.leaves(stats[4])))
  out[f'scale{int(aug)}'] = max(float(np.max(np.abs(a))) for a in jax.tree.leaves(stats[1]))
print('RESULT ' + json.dumps(out))
'''


def test_four_devices_give_the_statistics_of_one(tmp_path):
  proc = run_python(['-c', SCRIPT],
                    env=cpu_devices_env(4))
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  result = json.loads(line[len('RESULT '):])
  print('1 vs 4 devices, max |difference| of the statistics:', result)
  assert result['aug0'] < 1e-6 and result['aug1'] < 1e-6, result
  assert result['scale0'] > 1e-2  # real statistics, not zeros
