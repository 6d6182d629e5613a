"""One-step training, logged metrics, loss weights, VGG19 error before compile."""
import json
import os

import numpy as np
import pytest

from rrl_jax.training import metric_writers
from rrl_jax.training import train
from rrl_jax.training import vgg19
from tests.train_helpers import max_abs_diff, params_of, tiny_config

WEIGHTS = {'stage3': 2.0, 'stage4': 0.5, 'stage5': 1.0, 'module3': 0.0,
           'module4': 1.0, 'module5': 3.0, 'recon_a': 10.0, 'recon_b': 0.25}


@pytest.fixture(scope='module')
def one_step_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('one_step'))
  config = tiny_config(num_train_steps=1, checkpoint_every=1, eval_every=1)
  for k, v in WEIGHTS.items():
    config.loss_weights[k] = v
  summary = train.train_and_evaluate(config, workdir)
  return workdir, summary


def test_one_step_trains_checkpoints_and_evaluates(one_step_run):
  workdir, summary = one_step_run
  assert summary['final_step'] == 1 and summary['protocol'] == 'clean'
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '1'))
  variables = params_of(workdir)
  assert set(variables) == {'params', 'batch_stats'}
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['loss_weights']['recon_a'] == 10.0
  with open(os.path.join(workdir, 'results', 'results.json')) as f:
    record = json.load(f)
  assert record['protocol'] == 'clean' and 'test' in record['splits']
  assert os.listdir(os.path.join(workdir, 'tensorboard'))


def test_metrics_logged_and_weights_reach_total(one_step_run):
  workdir, _ = one_step_run
  (rec,) = metric_writers.read_metrics(workdir, 'train')
  for key in list(WEIGHTS) + ['total', 'accuracy', 'lr', 'grad_norm',
                              'pairs_per_sec', 'step_time']:
    assert key in rec, key
  expected = sum(WEIGHTS[k] * rec[k] for k in WEIGHTS)
  np.testing.assert_allclose(rec['total'], expected, rtol=1e-5)
  assert rec['lr'] == pytest.approx(2e-4)
  assert 0.0 <= rec['accuracy'] <= 1.0
  (ev,) = metric_writers.read_metrics(workdir, 'eval')
  assert 'selection_fpr95' in ev


def test_best_holds_recalibrated_statistics_and_the_moving_averages(one_step_run):
  from rrl_jax import checkpoint_format  # pylint: disable=g-import-not-at-top
  workdir, _ = one_step_run
  best_dir = os.path.join(workdir, 'best')
  best, trained = params_of(workdir, 'best'), params_of(workdir)  # both step 1
  assert max_abs_diff(best['params'], trained['params']) == 0.0
  # batch_stats of best/ are precise-BN statistics; the moving averages are kept.
  assert max_abs_diff(best['batch_stats'], trained['batch_stats']) > 1e-4
  moving = checkpoint_format.load_moving_batch_stats(best_dir)
  assert max_abs_diff(moving, trained['batch_stats']) == 0.0
  assert checkpoint_format.load_meta(best_dir)[0]['bn_statistics'] == {
      'kind': 'recalibrated', 'batches': 2, 'batch_size': 8, 'augment': False,
      'split': 'train', 'moving_average': 'zero_debiased', 'model_name': 'rrl_net'}
  assert checkpoint_format.load_moving_batch_stats(os.path.join(workdir, 'checkpoints')) is None
  with open(os.path.join(workdir, 'results', 'results.json')) as f:
    record = json.load(f)
  assert record['bn_statistics']['kind'] == 'recalibrated'
  assert set(record['splits']['test']['moving_average']) >= {'fpr95', 'auc', 'accuracy'}
  with open(os.path.join(workdir, 'results', 'results.md')) as f:
    assert 'FPR95 (%) moving averages' in f.read()


def test_missing_vgg19_fails_before_anything(tmp_path):
  workdir = str(tmp_path / 'run')
  config = tiny_config(recon_loss='perceptual',
                       vgg19_weights=str(tmp_path / 'missing_vgg19.h5'))
  with pytest.raises(vgg19.VGG19WeightsError) as e:
    train.train_and_evaluate(config, workdir)
  msg = str(e.value)
  assert 'missing_vgg19.h5' in msg and 'recon_loss=mse' in msg
  assert not os.path.exists(workdir)  # Nothing written, nothing compiled.


def test_bad_protocol_is_rejected(tmp_path):
  with pytest.raises(ValueError, match='protocol'):
    train.train_and_evaluate(tiny_config(protocol='nope'), str(tmp_path))
