"""MLPP: the inference subtree is a strict subset and gives the full model's score."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import pruning
from rrl_jax.models import RRLNet

from conftest import SMALL_MODEL


def _paths(tree):
  return {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope='module')
def small():
  model = RRLNet(**SMALL_MODEL)
  rng = np.random.default_rng(0)
  xa = jnp.asarray(rng.uniform(size=(5, 64, 64, 1)), jnp.float32)
  xb = jnp.asarray(rng.uniform(size=(5, 64, 64, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), xa, xb)
  # Non-trivial statistics so inference mode is not the identity normalisation.
  _, updates = model.apply(variables, xa, xb, train=True, mutable=['batch_stats'])
  variables = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  return model, variables, xa, xb


def test_pruned_tree_is_strict_subset(small):
  model, variables, _, _ = small
  pruned = pruning.inference_variables(variables, model)
  full_paths, pruned_paths = _paths(variables), _paths(pruned)
  assert pruned_paths < full_paths
  dropped = {p.split("'")[3] for p in full_paths - pruned_paths}
  assert dropped == {'decoder_a', 'decoder_b', 'module_head3', 'module_head4',
                     'module_head5', 'stage_head3', 'stage_head4'}


def test_pruned_score_equals_full_stage5_probability(small):
  model, variables, xa, xb = small
  full = model.apply(variables, xa, xb)
  pruned = pruning.inference_variables(variables, model)
  score = pruning.match_probability(model, pruned, xa, xb)
  np.testing.assert_allclose(np.asarray(score),
                             np.asarray(jax.nn.sigmoid(full['stage5'])),
                             rtol=0, atol=1e-6)


def test_pruning_a_tree_without_the_score_path_fails_clearly(small):
  model, variables, _, _ = small
  broken = {'params': {k: v for k, v in variables['params'].items() if k != 'metric'},
            'batch_stats': variables['batch_stats']}
  with pytest.raises(ValueError, match=r"no \['metric'\]"):
    pruning.inference_variables(broken, model)


class _TwoHeads(nn.Module):
  """A score path that uses part of a submodule: selection goes below the top level."""

  @nn.compact
  def __call__(self, xa, xb, train=False, score_only=False):
    trunk = nn.Dense(3, name='trunk')
    heads = _Heads(name='heads')
    h = trunk(jnp.concatenate([xa, xb], -1).reshape(xa.shape[0], -1))
    score = heads(h, score_only)
    return score if score_only else {'score': score, 'aux': heads.aux(h)}


class _Heads(nn.Module):
  def setup(self):
    self.main = nn.Dense(1)
    self.side = nn.Dense(2)

  def __call__(self, h, score_only):
    return self.main(h)[:, 0]

  def aux(self, h):
    return self.side(h)


def test_generic_pruning_keeps_exactly_the_score_only_tree():
  model = _TwoHeads()
  x = jnp.ones((2, 64, 64, 1))
  variables = model.init(jax.random.PRNGKey(0), x, x)
  variables = {'params': variables['params'], 'batch_stats': {}}
  pruned = pruning.inference_variables(variables, model)
  assert _paths(pruned) == {"['params']['heads']['main']['bias']",
                            "['params']['heads']['main']['kernel']",
                            "['params']['trunk']['bias']", "['params']['trunk']['kernel']"}
  np.testing.assert_array_equal(
      np.asarray(pruning.match_logit(model, pruned, x, x)),
      np.asarray(model.apply(variables, x, x)['score']))
  del variables['params']['heads']['main']
  with pytest.raises(ValueError, match=r"no \['params/heads/main'\]"):
    pruning.inference_variables(variables, model)


def test_scfdm_inference_tree_is_the_whole_model():
  from rrl_jax.models.scfdm import SCFDM  # pylint: disable=g-import-not-at-top
  model = SCFDM(widths=(4, 4, 8, 8, 8, 8), head_hidden=(8, 4))
  x = jnp.ones((1, 64, 64, 1))
  variables = model.init(jax.random.PRNGKey(0), x, x)
  assert _paths(pruning.inference_variables(variables, model)) == _paths(variables)
