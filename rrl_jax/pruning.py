"""MLPP: multi-loss post-pruning (paper Sec. 3.5).

After training, everything that only served a loss (RRL-Net: both decoders,
the module heads, the stage heads before the last; the comparison networks:
their auxiliary heads) is dropped. Pruning is pure tree selection, the same
for every registered network: the inference subtree is exactly the variable
tree that `model.init(..., score_only=True)` creates (its shape, via
jax.eval_shape), taken from the full variables; `match_logit` applies the same
model code with `score_only=True`, which touches exactly that subtree.
"""
import functools
import math
from typing import Any, Dict, List, Mapping

import jax
import jax.numpy as jnp

from rrl_jax.models import RRLNet


def _score_shapes_uncached(model) -> Dict[str, Any]:
  p = getattr(model, 'patch_size', 64)
  x = jax.ShapeDtypeStruct((1, p, p, 1), jnp.float32)
  shapes = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                  score_only=True), x, x)
  return {c: shapes.get(c, {}) for c in ('params', 'batch_stats')}


_score_shapes_cached = functools.lru_cache(maxsize=32)(_score_shapes_uncached)


def score_path_shapes(model) -> Dict[str, Any]:
  """{'params', 'batch_stats'} shape tree of the score path (no compile)."""
  try:
    return _score_shapes_cached(model)
  except TypeError:  # an unhashable field value: no caching
    return _score_shapes_uncached(model)


def _select(tree: Mapping[str, Any], shapes: Mapping[str, Any], prefix: str,
            missing: List[str]) -> Dict[str, Any]:
  out = {}
  for k, v in shapes.items():
    if not isinstance(tree, Mapping) or k not in tree:
      missing.append(f'{prefix}/{k}')
    elif isinstance(v, Mapping):
      out[k] = _select(tree[k], v, f'{prefix}/{k}', missing)
    else:
      out[k] = tree[k]
  return out


def inference_variables(variables: Dict[str, Any],
                        model=RRLNet()) -> Dict[str, Any]:
  """The inference subtree of full variables {'params', 'batch_stats'}.

  Raises a ValueError naming what is missing if the input lacks a part the
  match score needs. Leaves are shared, not copied.
  """
  shapes = score_path_shapes(model)
  pruned = {}
  for collection in ('params', 'batch_stats'):
    tree = variables.get(collection, {})
    top = [k for k in shapes[collection] if k not in tree]
    if top:
      raise ValueError(f'Cannot prune: {collection} has no {top}; '
                       f'top-level entries are {sorted(tree)}.')
    missing: List[str] = []
    pruned[collection] = _select(tree, shapes[collection], collection, missing)
    if missing:
      raise ValueError(f'Cannot prune: no {missing[:5]} in the variables '
                       f'({len(missing)} score-path leaves missing).')
  return pruned


def match_logit(model, variables: Dict[str, Any], xa: jax.Array,
                xb: jax.Array) -> jax.Array:
  """Match logit (B,) in inference mode; works on full or pruned variables."""
  return model.apply(variables, xa, xb, train=False, score_only=True)


def match_probability(model, variables: Dict[str, Any], xa: jax.Array,
                      xb: jax.Array) -> jax.Array:
  """P(match) = sigmoid of the score-only logit (the deployed score)."""
  return jax.nn.sigmoid(match_logit(model, variables, xa, xb))


def count_parameters(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
