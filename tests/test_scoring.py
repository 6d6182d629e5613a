"""Batched pruned scoring and per-split evaluation on a tiny in-memory dataset."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.models import RRLNet

from eval_helpers import TINY, random_variables


@pytest.fixture(scope='session')
def tiny_model_and_variables():
  model = RRLNet(**TINY)
  return model, random_variables(model)


@pytest.fixture(scope='session')
def tiny_splits():
  rng = np.random.default_rng(1)
  def split(n):
    labels = np.arange(n) % 2
    return rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8), labels.astype(np.int32)
  return {'field': split(10), 'forest': split(7)}


def test_scores_do_not_depend_on_batch_size(tiny_model_and_variables, tiny_splits):
  model, variables = tiny_model_and_variables
  pairs = tiny_splits['field'][0]
  by4 = evaluation.score_pairs(model, variables, pairs, batch_size=4)  # 4+4+2
  by32 = evaluation.score_pairs(model, variables, pairs, batch_size=32)
  assert by4.shape == (10,) and by4.dtype == np.float32
  np.testing.assert_allclose(by4, by32, atol=1e-6)
  assert np.all((by4 > 0) & (by4 < 1))
  assert np.ptp(by4) > 0


def test_uint8_and_float_inputs_agree(tiny_model_and_variables, tiny_splits):
  model, variables = tiny_model_and_variables
  pairs = tiny_splits['forest'][0]
  got = evaluation.score_pairs(model, variables, pairs, batch_size=4)
  floats = evaluation.score_pairs(model, variables, pairs / 255.0, batch_size=4)
  np.testing.assert_allclose(floats, got, atol=1e-6)


def test_evaluate_splits_schema(tiny_model_and_variables, tiny_splits):
  model, variables = tiny_model_and_variables
  result = evaluation.evaluate_splits(model, variables, tiny_splits, batch_size=4,
                                      dataset='vis_nir', return_scores=True)
  assert set(result['splits']) == {'field', 'forest'}
  for m in result['splits'].values():
    assert {'fpr95', 'auc', 'accuracy', 'precision', 'recall', 'f1', 'n'} <= set(m)
  assert result['splits']['forest']['n'] == 7
  assert result['mean']['fpr95'] == pytest.approx(
      np.mean([m['fpr95'] for m in result['splits'].values()]))
  assert result['complete_benchmark'] is False
  assert result['scores']['field'].shape == (10,)


def test_selection_fpr95_slices(tiny_model_and_variables, tiny_splits):
  model, variables = tiny_model_and_variables
  pairs, labels = tiny_splits['field']
  whole = evaluation.split_selection_fpr95(model, variables, pairs, labels, batch_size=4)
  sliced = evaluation.split_selection_fpr95(model, variables, pairs, labels,
                                            batch_size=4, slice_size=5)
  assert 0 <= whole <= 100 and 0 <= sliced <= 100


@pytest.mark.parametrize('pairs,message', [
    (np.zeros((3, 2, 32, 32), np.uint8), '32x32'),
    (np.zeros((3, 2, 64, 64, 3), np.uint8), '3 channels'),
    (np.zeros((0, 2, 64, 64), np.uint8), 'no pairs'),
    (np.full((3, 2, 64, 64), np.nan, np.float32), 'not finite'),
    (np.full((3, 2, 64, 64), 255.0, np.float32), r'\[0, 1\]'),
    (np.zeros((3, 64, 64), np.uint8), 'expected shape'),
    (np.zeros((3, 2, 64, 64), np.int64),
     r'dtype int64; accepted: uint8 \(0-255\) or float in \[0, 1\]'),
])
def test_bad_pairs(pairs, message):
  with pytest.raises(ValueError, match=message):
    evaluation.check_pairs(pairs)


def test_progress_bar_per_split(tiny_model_and_variables, tiny_splits, capsys):
  model, variables = tiny_model_and_variables
  quiet = evaluation.score_splits(model, variables, tiny_splits, batch_size=4)
  assert capsys.readouterr().err == ''  # off by default (library use, tests)
  shown = evaluation.score_splits(model, variables, tiny_splits, batch_size=4,
                                  progress=True)
  err = capsys.readouterr().err
  assert 'field: 100%' in err and '10/10' in err and 'forest: 100%' in err
  assert '7/7' in err and 'pair/s' in err
  for name in tiny_splits:
    np.testing.assert_array_equal(quiet[name], shown[name])


def test_mlpp_effect_counts(tiny_model_and_variables):
  model, variables = tiny_model_and_variables
  effect = evaluation.mlpp_effect(model, variables, latency=False)
  assert effect['params_pruned'] < effect['params_full']
  assert effect['params_pruned'] == pruning.count_parameters(
      pruning.inference_variables(variables, model)['params'])
  assert 'decoder_a' not in pruning.inference_variables(variables, model)['params']
