"""BatchNorm folding into the preceding conv (rrl_jax.evaluation.deploy)."""
import jax
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.evaluation import deploy
from rrl_jax.evaluation.scoring import U8_TO_UNIT
from rrl_jax.models import RRLNet
from eval_helpers import random_pairs, random_variables


def _logits(model, variables, pairs):
  x = U8_TO_UNIT[pairs]
  fn = jax.jit(lambda v, a, b: pruning.match_logit(model, v, a, b))
  return np.asarray(fn(variables, x[:, 0, ..., None], x[:, 1, ..., None]))


def test_fold_removes_every_batch_norm_and_keeps_scores(tiny_checkpoint):
  model, variables, _ = tiny_checkpoint
  folded, report = deploy.deploy_variables(model, variables)
  # Encoders 2 x 5 CBL, FIL 5 stages x (2 CBL + 2 gates), metric 5 x 2 CBL.
  assert len(report.folded) == 40 and report.unfolded == []
  assert 'batch_stats' not in folded
  assert not any('bn' in jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_leaves_with_path(folded))
  pairs = random_pairs(16)
  want, got = _logits(model, variables, pairs), _logits(model, folded, pairs)
  assert np.abs(want).max() > 0.1  # scores that move with the input
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  np.testing.assert_allclose(jax.nn.sigmoid(got), jax.nn.sigmoid(want), atol=1e-5)


def test_fold_full_width(tmp_path):
  """The paper's widths: folded and unfolded logits agree within 1e-5."""
  model = RRLNet()
  variables = random_variables(model)
  # At full width the small logit kernel leaves the logits nearly constant;
  # scaled up, they spread, so the comparison tests something.
  head = variables['params']['stage_head5']['logit']
  head['kernel'] = head['kernel'] * 300.0
  folded, report = deploy.deploy_variables(model, variables)
  assert len(report.folded) == 40
  assert pruning.count_parameters(folded) < pruning.count_parameters(
      pruning.inference_variables(variables, model))
  pairs = random_pairs(4, seed=3)
  want, got = _logits(model, variables, pairs), _logits(model, folded, pairs)
  assert np.ptp(want) > 0.01, want  # 100x the tolerance
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_fold_is_generic_and_skips_what_is_not_conv_then_bn():
  import flax.linen as nn
  from rrl_jax.models.layers import BatchNorm

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      x = BatchNorm(name='bn_in')(nn.Conv(3, (3, 3), name='c1')(x), train)
      y = BatchNorm(name='bn_mid')(nn.relu(nn.Conv(3, (1, 1), name='c2')(x)), train)
      return BatchNorm(name='bn_last')(nn.Conv(2, (1, 1), name='c3')(y), train)

  net = Net()
  x = np.random.default_rng(0).random((2, 8, 8, 1), np.float32)
  variables = net.init(jax.random.key(0), x)
  stats = jax.tree_util.tree_map(
      lambda s: s + np.random.default_rng(1).random(s.shape).astype(np.float32),
      variables['batch_stats'])
  variables = {'params': variables['params'], 'batch_stats': stats}
  folded, report = deploy.fold_batch_norms(net.apply, variables, x)
  assert [b for _, b in report.folded] == [('bn_in',), ('bn_last',)]
  assert report.unfolded == [('bn_mid',)]  # a ReLU between conv and BN
  assert set(folded['batch_stats']) == {'bn_mid'}
  np.testing.assert_allclose(net.apply(folded, x), net.apply(variables, x), atol=1e-5)
  with pytest.raises(ValueError, match='folded'):
    net.apply(folded, x, train=True, mutable=['batch_stats'])
