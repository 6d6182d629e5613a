"""Keras layer weights -> Flax variables, for every network of the model zoo.

A network describes its Keras layers with `keras_layer_plan(model)`:
{keras type: [flax module path, ...]} listing, for each type, the Flax modules
in the order the official model's layers appear in `model.layers` (the rows of
the fixtures' layers.tsv, and the `layer_names` order of a Keras HDF5 file).
The type of a Keras layer is read from its weights, not its name (the official
code renames branch copies, e.g. AFD's `conv1_2`, MFD's
`batch_normalization_5_2`): kernel rank 4/3/2 is conv2d/conv1d/dense, a layer
with moving statistics is batch_normalization, gamma/beta alone is
instance_normalization. For auto-named layers that is the Keras name without
its numeric suffix.

Keras weight names map to Flax leaves as in `LEAVES` (BatchNorm: gamma ->
params/scale, beta -> params/bias, moving_mean -> batch_stats/mean,
moving_variance -> batch_stats/var; see rrl_jax/models/layers.py).
"""
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from rrl_jax.errors import UserError

KerasLayers = Mapping[str, Mapping[str, np.ndarray]]
Path = Tuple[str, ...]
Plan = Mapping[str, Sequence[Path]]

# Keras weight name -> candidate (collection, leaf) of the Flax module; the first
# candidate present in the template is used.
LEAVES = {
    'kernel': (('params', 'kernel'),),
    'bias': (('params', 'bias'),),
    'gamma': (('params', 'scale'), ('params', 'gamma')),
    'beta': (('params', 'bias'), ('params', 'beta')),
    'moving_mean': (('batch_stats', 'mean'),),
    'moving_variance': (('batch_stats', 'var'),),
}
# Weights every layer of a type must have.
REQUIRED = {
    'conv2d': ('kernel', 'bias'), 'conv1d': ('kernel', 'bias'),
    'dense': ('kernel', 'bias'),
    'batch_normalization': ('gamma', 'beta', 'moving_mean', 'moving_variance'),
    'instance_normalization': ('gamma', 'beta'),
}
_KERNEL_TYPES = {4: 'conv2d', 3: 'conv1d', 2: 'dense'}


class ConversionError(UserError, ValueError):
  """Keras weights that do not fit the Flax model (one clear message)."""


def weight_key(name: str) -> str:
  """'conv2d_10/kernel:0' -> 'kernel'."""
  return name.split('/')[-1].split(':')[0]


def keras_type(weights: Mapping[str, Any]) -> str:
  """Keras layer type from its weights ('' for a layer this module ignores)."""
  keys = {weight_key(k): v for k, v in weights.items()}
  if 'moving_mean' in keys:
    return 'batch_normalization'
  if 'kernel' in keys:
    return _KERNEL_TYPES.get(np.ndim(keys['kernel']), '')
  if 'gamma' in keys:
    return 'instance_normalization'
  return ''


def group_by_type(keras_layers: KerasLayers) -> Dict[str, List[str]]:
  """{type: [layer name, ...]} in the order of `keras_layers` (model.layers)."""
  groups: Dict[str, List[str]] = {}
  for name, weights in keras_layers.items():
    t = keras_type(weights)
    if t:
      groups.setdefault(t, []).append(name)
  return groups


def _node(tree: Mapping[str, Any], path: Path):
  for p in path:
    if not isinstance(tree, Mapping) or p not in tree:
      return None
    tree = tree[p]
  return tree


def assign_layer(variables: Dict[str, Any], ktype: str, path: Path,
                 weights: Mapping[str, Any], layer: str,
                 template: Mapping[str, Any] = None) -> None:
  """Writes one Keras layer's weights into `variables` at Flax module `path`.

  `template` (a shape tree like `variables`, e.g. from jax.eval_shape of
  model.init) picks among the LEAVES candidates and checks shapes; without it
  the first candidate is used.
  """
  weights = {weight_key(k): v for k, v in weights.items()}
  need = REQUIRED.get(ktype, tuple(weights))
  missing = [w for w in need if w not in weights]
  if missing:
    raise ConversionError(f'Keras layer {layer!r}: missing weights {missing} '
                          f'(has {sorted(weights)}).')
  for w in need:
    candidates = LEAVES.get(w)
    if candidates is None:
      raise ConversionError(f'Keras layer {layer!r}: unknown weight {w!r}.')
    collection, leaf = candidates[0]
    if template is not None:
      found = [(c, l) for c, l in candidates
               if isinstance(_node(template.get(c, {}), path), Mapping)
               and l in _node(template[c], path)]
      if not found:
        where = '/'.join(path)
        raise ConversionError(
            f'Keras layer {layer!r} ({ktype}) -> Flax module {where!r}: the '
            f'model has no {" or ".join(c + "/" + l for c, l in candidates)} '
            f'there for Keras weight {w!r}.')
      collection, leaf = found[0]
      want = tuple(getattr(_node(template[collection], path)[leaf], 'shape', ()))
      got = tuple(np.shape(weights[w]))
      if got != want:
        where = '/'.join((collection,) + tuple(path) + (leaf,))
        raise ConversionError(
            f'Keras layer {layer!r} weight {w!r} has shape {got}, but Flax '
            f'{where} expects {want}.')
    node = variables.setdefault(collection, {})
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = np.asarray(weights[w], np.float32)


def _leaf_paths(tree: Mapping[str, Any], prefix: Path = ()) -> List[Path]:
  out = []
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out += _leaf_paths(v, prefix + (k,))
    else:
      out.append(prefix + (k,))
  return out


def layers_to_variables(plan: Plan, keras_layers: KerasLayers,
                        template: Mapping[str, Any],
                        source: str = 'Keras weights') -> Dict[str, Any]:
  """Maps {keras layer: {weight: array}} onto {'params', 'batch_stats'}.

  Args:
    plan: {keras type: [flax path, ...]} in model.layers order.
    keras_layers: ordered {layer name: {weight name: array}} in model.layers
      order (insertion order); layers without weights may be absent.
    template: {'params', 'batch_stats'} of the model (arrays or
      ShapeDtypeStructs); every leaf must be covered by the plan.
    source: named in error messages (the file).
  Raises:
    ConversionError naming the layer type count, layer or leaf that does not fit.
  """
  groups = group_by_type(keras_layers)
  bad = [f'{t}: file has {len(groups.get(t, []))}, model expects {len(plan.get(t, []))}'
         for t in sorted(set(groups) | set(plan))
         if len(groups.get(t, [])) != len(plan.get(t, []))]
  if bad:
    raise ConversionError(f'{source}: the Keras layers do not fit this model '
                          f'({"; ".join(bad)}).')
  variables: Dict[str, Any] = {}
  for t, paths in plan.items():
    for path, name in zip(paths, groups.get(t, [])):
      assign_layer(variables, t, tuple(path), keras_layers[name], name, template)
  template = {k: v for k, v in template.items() if k in ('params', 'batch_stats')}
  want = {(c,) + p for c in template for p in _leaf_paths(template[c])}
  got = {(c,) + p for c in variables for p in _leaf_paths(variables[c])}
  if want - got:
    missing = sorted('/'.join(p) for p in want - got)
    raise ConversionError(f'{source}: no Keras weights for {len(missing)} model '
                          f'leaves, e.g. {missing[:5]} (the layer plan misses them).')
  variables.setdefault('batch_stats', {})
  return variables


def variables_to_layers(plan: Plan, variables: Mapping[str, Any],
                        names: Mapping[str, Sequence[str]] = None
                        ) -> Dict[str, Dict[str, np.ndarray]]:
  """Inverse of layers_to_variables: {keras layer: {weight: array}}.

  Layers are named `names[type][i]` when given, else with tf_keras automatic
  names ('conv2d', 'conv2d_1', ...). The dict is in plan order within a type.
  """
  out: Dict[str, Dict[str, np.ndarray]] = {}
  for t, paths in plan.items():
    for i, path in enumerate(paths):
      name = names[t][i] if names else (t if i == 0 else f'{t}_{i}')
      layer = {}
      for w in REQUIRED[t]:
        for collection, leaf in LEAVES[w]:
          node = _node(variables.get(collection, {}), tuple(path))
          if isinstance(node, Mapping) and leaf in node:
            layer[w] = np.asarray(node[leaf])
            break
      out[name] = layer
  return out
