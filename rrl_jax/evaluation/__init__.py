"""Evaluation: metrics, scoring, reports, the matcher and deployment
(docs/architecture.md).

`from rrl_jax import evaluation` keeps working: the scoring functions are
re-exported here (rrl_jax/evaluation/scoring.py).
"""
from rrl_jax.evaluation.scoring import (DATA_AXIS, VIS_NIR_TEST, check_pairs, data_mesh,
                                        evaluate_splits, mlpp_effect, score_pairs,
                                        score_splits, split_selection_fpr95,
                                        summarize_splits)
