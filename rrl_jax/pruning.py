"""MLPP: multi-loss post-pruning (paper Sec. 3.5, REFERENCE "MLPP").

After training, everything that only served a loss (both decoders, the module
heads, the stage heads before the last) is dropped. Pruning is pure tree
selection: `inference_variables` keeps the subtree the match score reads, and
`match_logit` applies the *same* RRLNet code with `score_only=True`, which
touches exactly that subtree.
"""
import math
from typing import Any, Dict, Tuple

import jax

from rrl_jax.models import RRLNet


def inference_collections(model: RRLNet) -> Tuple[str, ...]:
  """Top-level submodules the match score needs."""
  return ('encoder_a', 'encoder_b', 'fil', 'metric',
          f'stage_head{model.score_stage}')


def inference_variables(variables: Dict[str, Any],
                        model: RRLNet = RRLNet()) -> Dict[str, Any]:
  """The inference subtree of full variables {'params', 'batch_stats'}.

  Raises a ValueError naming what is missing if the input lacks a part the
  match score needs. Leaves are shared, not copied.
  """
  keep = inference_collections(model)
  pruned = {}
  for collection in ('params', 'batch_stats'):
    tree = variables.get(collection, {})
    missing = [k for k in keep if k not in tree and collection == 'params']
    if missing:
      raise ValueError(f'Cannot prune: {collection} has no {missing}; '
                       f'top-level entries are {sorted(tree)}.')
    pruned[collection] = {k: tree[k] for k in keep if k in tree}
  return pruned


def match_logit(model: RRLNet, variables: Dict[str, Any], xa: jax.Array,
                xb: jax.Array) -> jax.Array:
  """Match logit (B,) in inference mode; works on full or pruned variables."""
  return model.apply(variables, xa, xb, train=False, score_only=True)


def match_probability(model: RRLNet, variables: Dict[str, Any], xa: jax.Array,
                      xb: jax.Array) -> jax.Array:
  """P(match) = sigmoid of the last stage head (the deployed score)."""
  return jax.nn.sigmoid(match_logit(model, variables, xa, xb))


def count_parameters(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
