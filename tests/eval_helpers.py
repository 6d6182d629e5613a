"""Helpers shared by the evaluation, report and matcher tests."""
import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax import checkpoint_format
from rrl_jax.models import model_config

from conftest import SMALL_MODEL as TINY


def random_variables(model, seed=0):
  """Random weights from shapes alone (no compile): scores spread across inputs."""
  x = jnp.zeros((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, x))
  rng = np.random.default_rng(seed)
  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if 'var' in name:  # small encoder variances undo MGLA's sigmoid gating
      scale = 0.01 if 'encoder' in name else 1.0
      value = rng.uniform(0.5 * scale, 2 * scale, leaf.shape)
    elif 'kernel' in name:
      scale = 0.1 if "'logit'" in name else 1.0  # unsaturated probabilities
      value = rng.normal(0, scale * np.sqrt(2 / np.prod(leaf.shape[:-1])),
                         leaf.shape)
    elif 'scale' in name:
      value = np.ones(leaf.shape)
    else:
      value = rng.normal(0, 0.01, leaf.shape)
    return jnp.asarray(value, leaf.dtype)
  variables = jax.tree_util.tree_map_with_path(fill, shapes)
  return {'params': variables['params'], 'batch_stats': variables['batch_stats']}


def random_pairs(n, seed=0):
  """n random uint8 pairs (n, 2, 64, 64)."""
  return np.random.default_rng(seed).integers(0, 256, (n, 2, 64, 64), np.uint8)


def save_tiny_checkpoint(directory, model, variables):
  """An rrl_jax checkpoint of the reduced model (what training would write)."""
  checkpoint_format.save_variables(str(directory), variables,
                            {'model': model_config(model), 'source': 'test'})
  return str(directory)
