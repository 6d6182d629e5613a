"""Deploy form: BatchNorm folded into the preceding convolution (inference only).

In inference mode a BatchNorm right after a convolution is an affine map per
output channel, y = conv(x) * inv + (beta - mean * inv) with
inv = gamma / sqrt(var + eps), so it can be moved into the convolution:
kernel' = kernel * inv, bias' = (bias - mean) * inv + beta. The folded tree has
no BatchNorm variables left; the *same* model code applies it, because
`BatchNorm` is the identity when its variables are absent
(`rrl_jax.models.layers.BatchNorm.is_folded`). No second architecture.

Which BatchNorm follows which convolution is not guessed from names: the model
is traced once (`jax.eval_shape`, nothing compiled) with a Flax method
interceptor, and a BatchNorm is folded only when its input *is* the output of
an `nn.Conv` with a bias (nothing in between), both called exactly once, and
the convolution's output goes to no other module and is returned by none (e.g.
MFD-Net's raw conv1/conv2 taps, which feed its difference branches). Others
stay as they are (and keep normalising). A raw use by plain jnp code inside the
same module is not visible to the trace: tests/test_export_zoo.py checks that
every network of the zoo scores the same folded and unfolded. Works for any Flax model built on
`rrl_jax.models.layers.BatchNorm`.
"""
import dataclasses
from typing import Any, Dict, List, Sequence, Tuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax import pruning
from rrl_jax.models import RRLNet
from rrl_jax.models.layers import BatchNorm

Path = Tuple[str, ...]


@dataclasses.dataclass
class FoldReport:
  """What `fold_batch_norms` did: (conv, bn) module paths folded, BNs left."""
  folded: List[Tuple[Path, Path]]
  unfolded: List[Path]

  def summary(self) -> str:
    left = (f'; {len(self.unfolded)} left: '
            + ', '.join('/'.join(p) for p in self.unfolded)) if self.unfolded else ''
    return f'{len(self.folded)} BatchNorm layers folded into their convolutions{left}'


def trace_conv_bn_pairs(apply_fn, variables: Dict[str, Any], *args, **kwargs
                        ) -> Tuple[List[Tuple[Path, Path, float]], List[Path]]:
  """(conv path, bn path, epsilon) for every BatchNorm fed directly by a Conv.

  `apply_fn(variables, *args, **kwargs)` runs the model (e.g. `model.apply`
  with inference arguments); it is traced abstractly, never compiled. `args`
  are arrays or ShapeDtypeStructs, `kwargs` static (e.g. train=False).
  """
  conv_outputs, bn_inputs, calls = [], [], {}
  # Every array handed into or returned by any module call, with its path: a
  # conv output seen anywhere but its conv's output and the BatchNorm's input
  # (or a module around that BatchNorm) is used raw elsewhere and must not change.
  module_inputs, module_outputs = [], []

  def interceptor(next_fun, call_args, call_kwargs, context):
    module = context.module
    path = tuple(module.scope.path)
    out = next_fun(*call_args, **call_kwargs)
    module_inputs.extend((x, path) for x in jax.tree.leaves((call_args, call_kwargs)))
    module_outputs.extend((x, path) for x in jax.tree.leaves(out))
    if context.method_name != '__call__' or not isinstance(module, (nn.Conv, BatchNorm)):
      return out
    calls[path] = calls.get(path, 0) + 1
    if isinstance(module, nn.Conv):
      if module.use_bias:
        conv_outputs.append((out, path))
    else:
      bn_inputs.append((call_args[0] if call_args else call_kwargs['x'], path,
                        float(module.epsilon)))
    return out

  def only_feeds(x, conv: Path, bn: Path) -> bool:
    """x (conv's output) reaches no module but `bn` (and modules around it)."""
    inputs_ok = all(bn[:len(p)] == p for y, p in module_inputs if y is x)
    return inputs_ok and [p for y, p in module_outputs if y is x] == [conv]

  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda v, a: apply_fn(v, *a, **kwargs), variables, args)
  pairs, unfolded = [], []
  for x, bn_path, eps in bn_inputs:
    sources = [p for out, p in conv_outputs if out is x]
    if (len(sources) == 1 and calls[sources[0]] == 1 and calls[bn_path] == 1
        and only_feeds(x, sources[0], bn_path)):
      pairs.append((sources[0], bn_path, eps))
    elif bn_path not in unfolded:
      unfolded.append(bn_path)
  return pairs, unfolded


def fold_pairs(variables: Dict[str, Any], pairs: Sequence[Tuple[Path, Path, float]]
               ) -> Dict[str, Any]:
  """The variables with each (conv, bn, eps) pair folded (float64 arithmetic)."""
  params = traverse_util.flatten_dict(dict(variables['params']))
  stats = traverse_util.flatten_dict(dict(variables.get('batch_stats', {})))
  for conv, bn, eps in pairs:
    kernel = np.asarray(params[conv + ('kernel',)], np.float64)
    bias = np.asarray(params[conv + ('bias',)], np.float64)
    gamma = np.asarray(params.pop(bn + ('scale',)), np.float64)
    beta = np.asarray(params.pop(bn + ('bias',)), np.float64)
    mean = np.asarray(stats.pop(bn + ('mean',)), np.float64)
    var = np.asarray(stats.pop(bn + ('var',)), np.float64)
    inv = gamma / np.sqrt(var + eps)
    dtype = params[conv + ('kernel',)].dtype
    params[conv + ('kernel',)] = jnp.asarray(kernel * inv, dtype)
    params[conv + ('bias',)] = jnp.asarray((bias - mean) * inv + beta, dtype)
  folded = {'params': traverse_util.unflatten_dict(params)}
  if stats:
    folded['batch_stats'] = traverse_util.unflatten_dict(stats)
  return folded


def fold_batch_norms(apply_fn, variables: Dict[str, Any], *args, **kwargs
                     ) -> Tuple[Dict[str, Any], FoldReport]:
  """Folds every BatchNorm that directly follows a biased convolution.

  Generic: `apply_fn(variables, *args, **kwargs)` is any inference call of a
  Flax model. Returns the deploy variables and a FoldReport.
  """
  pairs, unfolded = trace_conv_bn_pairs(apply_fn, variables, *args, **kwargs)
  folded = fold_pairs(variables, pairs)
  return folded, FoldReport([(c, b) for c, b, _ in pairs], unfolded)


def deploy_variables(model: RRLNet, variables: Dict[str, Any]
                     ) -> Tuple[Dict[str, Any], FoldReport]:
  """RRL-Net: MLPP-pruned inference subtree with every BatchNorm folded.

  Apply the result with `pruning.match_logit(model, folded, xa, xb)`.
  """
  pruned = pruning.inference_variables(dict(variables), model)
  x = jax.ShapeDtypeStruct((1, model.patch_size, model.patch_size, 1), jnp.float32)
  return fold_batch_norms(
      lambda v, a, b: model.apply(v, a, b, train=False, score_only=True),
      pruned, x, x)
