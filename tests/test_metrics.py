"""rrl_jax.metrics against sklearn + scipy, the official computation."""
import numpy as np
import pytest
from scipy import interpolate
from sklearn import metrics as skm

from rrl_jax import metrics


def official_fpr95(labels, scores):
  fpr, tpr, _ = skm.roc_curve(labels, scores)
  return 100.0 * float(interpolate.interp1d(tpr, fpr)(0.95))


@pytest.mark.parametrize('seed', range(12))
def test_fpr95_matches_official_with_many_ties(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(20, 400))
  labels = rng.integers(0, 2, n)
  labels[:2] = (0, 1)
  levels = int(rng.integers(2, 12))  # few distinct scores: many ties
  scores = np.round(rng.random(n) * levels) / levels + 0.2 * labels
  assert metrics.fpr95(labels, scores) == pytest.approx(
      official_fpr95(labels, scores), abs=1e-12)


def test_fpr95_float32_scores_and_column_inputs():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, (300, 1))
  scores = (rng.random((300, 1)) * 0.7 + 0.3 * labels).astype(np.float32)
  assert metrics.fpr95(labels, scores) == pytest.approx(
      official_fpr95(labels[:, 0], scores[:, 0]), abs=1e-12)


def test_all_scores_equal():
  labels = np.array([0, 1, 0, 1, 1, 0])
  scores = np.full(6, 0.3)
  assert metrics.fpr95(labels, scores) == pytest.approx(official_fpr95(labels, scores))
  assert metrics.fpr95(labels, scores) == pytest.approx(95.0)


def test_perfectly_separated():
  labels = np.array([0, 0, 0, 1, 1, 1])
  scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
  assert metrics.fpr95(labels, scores) == 0.0
  summary = metrics.summarize(labels, scores)
  assert summary['auc'] == 1.0 and summary['accuracy'] == 1.0
  assert summary['f1'] == 1.0 and summary['n'] == 6 and summary['n_match'] == 3


def test_threshold_metrics_match_sklearn_strict_threshold():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 2, 200)
  scores = np.round(rng.random(200) * 4) / 4  # many exactly at 0.5
  predicted = (scores > 0.5).astype(int)
  got = metrics.summarize(labels, scores)
  assert got['accuracy'] == skm.accuracy_score(labels, predicted)
  assert got['precision'] == skm.precision_score(labels, predicted)
  assert got['recall'] == skm.recall_score(labels, predicted)
  assert got['f1'] == skm.f1_score(labels, predicted)
  assert got['auc'] == skm.roc_auc_score(labels, scores)
  assert got['n_false_nonmatch'] == int(np.sum((labels == 1) & (predicted == 0)))


@pytest.mark.parametrize('labels', [np.zeros(5), np.ones(5)])
def test_one_class_is_a_clear_error(labels):
  with pytest.raises(ValueError, match='both matching'):
    metrics.fpr95(labels, np.linspace(0, 1, 5))


@pytest.mark.parametrize('labels,scores,message', [
    (np.array([0, 1, 2]), np.zeros(3), 'must be 0'),
    (np.array([0, 1]), np.array([0.1, np.nan]), 'not finite'),
    (np.array([0, 1]), np.zeros(3), '3 scores for 2 labels'),
    (np.array([]), np.array([]), 'non-empty'),
])
def test_bad_inputs(labels, scores, message):
  with pytest.raises(ValueError, match=message):
    metrics.summarize(labels, scores)


def test_mean_over_splits():
  per = {'a': dict(zip(metrics.METRIC_NAMES, range(6))),
         'b': dict(zip(metrics.METRIC_NAMES, range(2, 8)))}
  assert metrics.mean_over_splits(per)['fpr95'] == 1.0
  assert metrics.mean_over_splits(per)['f1'] == 6.0
