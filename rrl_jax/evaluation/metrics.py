"""Patch-matching metrics, as the official test code computes them.

FPR95 (docs/evaluation.md) = FPR at TPR 0.95 from
`sklearn.metrics.roc_curve(labels, scores)`, linearly interpolated by
`scipy.interpolate.interp1d(tpr, fpr)(0.95)` (both called as such), in percent.
Accuracy / precision / recall / F1 threshold the score as the official code
does (`score > 0.5` is a match).
"""
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np
from scipy import interpolate
from sklearn import metrics as skm

TARGET_TPR = 0.95
THRESHOLD = 0.5
METRIC_NAMES = ('fpr95', 'auc', 'accuracy', 'precision', 'recall', 'f1')


def _column_to_vector(x: Any) -> np.ndarray:
  """(N,) from (N,) or a Keras-style (N, 1) column."""
  x = np.asarray(x)
  return x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x


def check_labels_scores(labels: Any, scores: Any,
                        name: str = 'split') -> Tuple[np.ndarray, np.ndarray]:
  """(labels int32, scores float64) after one clear ValueError per bad input."""
  labels, scores = _column_to_vector(labels), _column_to_vector(scores)
  scores = scores.astype(np.float64)
  if labels.ndim != 1 or labels.size == 0:
    raise ValueError(f'{name}: labels must be a non-empty 1-D array, got shape '
                     f'{labels.shape}.')
  if scores.shape != labels.shape:
    raise ValueError(f'{name}: {scores.size} scores for {labels.size} labels.')
  values = set(np.unique(labels).tolist())
  if not values <= {0, 1}:
    raise ValueError(f'{name}: labels must be 0 (non-matching) or 1 (matching), '
                     f'got values {sorted(values)[:5]}.')
  if len(values) < 2:
    only = values.pop()
    raise ValueError(f'{name}: FPR95 and AUC need both matching (1) and '
                     f'non-matching (0) pairs; all {labels.size} labels are {only}.')
  if not np.all(np.isfinite(scores)):
    raise ValueError(f'{name}: {int(np.sum(~np.isfinite(scores)))} scores are '
                     'not finite (NaN or inf).')
  return labels.astype(np.int32), scores


def roc(labels: Any, scores: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(fpr, tpr, thresholds) of sklearn.metrics.roc_curve (the official ROC)."""
  labels, scores = check_labels_scores(labels, scores)
  return skm.roc_curve(labels, scores)


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float = TARGET_TPR) -> float:
  """`scipy.interpolate.interp1d(tpr, fpr)(target)`: FPR (fraction) at TPR `target`.

  Called, not re-derived: where TPR equals `target` at several ROC points
  (tied scores), interp1d decides which FPR is returned.
  """
  tpr, fpr = np.asarray(tpr, np.float64), np.asarray(fpr, np.float64)
  if tpr.size < 2 or not tpr.min() <= target <= tpr.max():
    raise ValueError(f'TPR {target} is outside the ROC curve\'s TPR range '
                     f'[{tpr.min() if tpr.size else None}, '
                     f'{tpr.max() if tpr.size else None}].')
  return float(interpolate.interp1d(tpr, fpr)(target))


def fpr95(labels: Any, scores: Any) -> float:
  """FPR at 95% TPR in percent (docs/evaluation.md)."""
  fpr, tpr, _ = roc(labels, scores)
  return 100.0 * fpr_at_tpr(fpr, tpr)


def auc(labels: Any, scores: Any) -> float:
  labels, scores = check_labels_scores(labels, scores)
  return float(skm.roc_auc_score(labels, scores))


def threshold_metrics(labels: Any, scores: Any,
                      threshold: float = THRESHOLD) -> Dict[str, float]:
  """Accuracy, precision, recall, F1 with `score > threshold` as a match."""
  labels, scores = check_labels_scores(labels, scores)
  predicted = (scores > threshold).astype(np.int32)
  return {
      'accuracy': float(skm.accuracy_score(labels, predicted)),
      'precision': float(skm.precision_score(labels, predicted, zero_division=0)),
      'recall': float(skm.recall_score(labels, predicted, zero_division=0)),
      'f1': float(skm.f1_score(labels, predicted, zero_division=0)),
  }


def summarize(labels: Any, scores: Any, name: str = 'split') -> Dict[str, Any]:
  """All metrics of one split: fpr95 (%), auc, accuracy, precision, recall, f1, counts."""
  labels, scores = check_labels_scores(labels, scores, name)
  fpr, tpr, _ = skm.roc_curve(labels, scores)
  out = {'fpr95': 100.0 * fpr_at_tpr(fpr, tpr),
         'auc': float(skm.roc_auc_score(labels, scores))}
  out.update(threshold_metrics(labels, scores))
  out.update(n=int(labels.size), n_match=int(labels.sum()),
             n_false_match=int(np.sum((labels == 0) & (scores > THRESHOLD))),
             n_false_nonmatch=int(np.sum((labels == 1) & (scores <= THRESHOLD))))
  return out


def mean_over_splits(per_split: Mapping[str, Mapping[str, Any]],
                     names: Sequence[str] = METRIC_NAMES) -> Dict[str, float]:
  """Unweighted mean of each metric over splits (how the paper averages VIS-NIR)."""
  if not per_split:
    raise ValueError('No splits to average.')
  return {k: float(np.mean([m[k] for m in per_split.values()])) for k in names}
