"""rrl_jax.evaluation.metrics against sklearn + scipy, the official computation."""
import numpy as np
import pytest
from scipy import interpolate
from sklearn import metrics as skm

from rrl_jax.evaluation import metrics


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


def test_tpr_hits_095_at_two_roc_points():
  """19 of 20 matches score 0.9, 4 of 10 non-matches 0.5: TPR is 0.95 at FPR 0 and
  at FPR 0.4. interp1d returns the later point (40 %); the first point (0 %) is
  what a searchsorted-left re-derivation of its arithmetic returned."""
  labels = np.array([1] * 20 + [0] * 10)
  scores = np.array([0.9] * 19 + [0.1] + [0.5] * 4 + [0.05] * 6)
  fpr, tpr, _ = skm.roc_curve(labels, scores)
  at = np.flatnonzero(tpr == 0.95)
  assert len(at) == 2 and fpr[at[0]] == 0.0 and fpr[at[1]] == 0.4
  assert official_fpr95(labels, scores) == 40.0
  assert metrics.fpr95(labels, scores) == 40.0
  assert metrics.summarize(labels, scores)['fpr95'] == 40.0
  # The earlier re-derivation (stable sort, left searchsorted) gave the other point.
  hi = int(np.clip(np.searchsorted(tpr, 0.95), 1, len(tpr) - 1))
  old = fpr[hi - 1] + (fpr[hi] - fpr[hi - 1]) / (tpr[hi] - tpr[hi - 1]) * (
      0.95 - tpr[hi - 1])
  assert 100.0 * old == 0.0


@pytest.mark.parametrize('seed', range(6))
def test_fpr95_property_heavy_ties(seed):
  """Many random sets with rounded and saturated (0 / 1, float32) scores, many of
  them with 0.95 x matches an integer, equal sklearn + scipy to 1e-12."""
  rng = np.random.default_rng(1000 + seed)
  doubles = 0
  for _ in range(100):
    n_pos = int(rng.choice([20, 40, 60, 100, int(rng.integers(2, 300))]))
    n_neg = int(rng.integers(1, 300))
    labels = rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)])
    kind = rng.integers(3)
    raw = rng.normal(1.5 * labels, 1.5)
    if kind == 0:  # rounded scores
      levels = int(rng.integers(2, 20))
      scores = np.round((1 / (1 + np.exp(-raw))) * levels) / levels
    elif kind == 1:  # saturated float32 sigmoids: many exact 0s and 1s
      scores = (1 / (1 + np.exp(-np.float32(12) * raw.astype(np.float32))))
    else:  # a few values only, saturated at both ends
      scores = np.clip(np.round(raw), 0, 1).astype(np.float64)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    doubles += int(np.sum(tpr == 0.95) >= 2)
    assert metrics.fpr95(labels, scores) == pytest.approx(
        official_fpr95(labels, scores), abs=1e-12, rel=0)
  assert doubles > 0  # the case that matters is among the draws


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
