r"""Import official Keras weights into an rrl_jax checkpoint.

The program is `python -m launch.convert` (launch/convert.py).

Reads `model.save_weights` files, full `model.save` files (weights under
`model_weights/`, optimizer state ignored) and the inference-only test model
(`match_model_best_test.hdf5`). Layers are matched by *creation order* within
each layer type and branch (fixtures/keras_rrl/README.md), never by their exact
numeric names, so Keras 2.2 (`conv2d_1`...) and tf_keras (`conv2d`...) files
both work. Branch B layers carry the suffix `_<n>_2` on the layer name.

The five comparison networks (`--model=scfdm|afd_net|mfd_net|efr_net|fil_net`)
are read from the `match_model_best.hdf5` the official train_model.py saves
(model.save, or save_weights): their layers are matched by type and
`model.layers` order (the file's layer_names order) through each network's
`keras_layer_plan` (rrl_jax/keras_import.py), since the official code renames
branch copies and their numeric names do not give the creation order.
"""
import os
import re
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from rrl_jax import keras_import
from rrl_jax.models import RRLNet, get_model, model_config, model_name

KerasLayers = Dict[str, Dict[str, np.ndarray]]
Path = Tuple[str, ...]

TYPES = ('conv2d', 'batch_normalization', 'conv1d', 'dense')
_BRANCH_B = re.compile(r'_\d+_2$')
_NAME = re.compile(r'^(?P<type>[a-z_0-9]+?)(?:_(?P<num>\d+))?$')
_STAGES = (1, 2, 3, 4, 5)
_UPS = (8, 16, 32, 64)
_HEADS = (3, 4, 5)
_GATES = ('channel', 'height', 'width')
_FIL_PARTS = ('value_a', 'gate_a', 'value_b', 'gate_b')


ConversionError = keras_import.ConversionError


def _branch_paths(side: str, inference_only: bool) -> Dict[str, List[Path]]:
  """Flax module paths of one branch's layers, per Keras type, in creation order."""
  enc, dec = f'encoder_{side}', f'decoder_{side}'
  conv2d = [(enc, f'stage{s}', 'cbl', 'conv') for s in _STAGES]
  bn = [(enc, f'stage{s}', 'cbl', 'bn') for s in _STAGES]
  conv1d = [(enc, f'stage{s}', 'mgla', g, 'conv1d') for s in _STAGES for g in _GATES]
  if not inference_only:
    conv2d += [(dec, f'up{u}', 'cbl', 'conv') for u in _UPS] + [(dec, 'recon_conv')]
    bn += [(dec, f'up{u}', 'cbl', 'bn') for u in _UPS]
    conv1d += [(dec, f'up{u}', 'mgla', g, 'conv1d') for u in _UPS for g in _GATES]
  return {'conv2d': conv2d, 'batch_normalization': bn, 'conv1d': conv1d,
          'dense': []}


def _shared_paths(inference_only: bool) -> Dict[str, List[Path]]:
  """Flax paths of the shared layers (FIL, metric net, heads) in creation order."""
  fil = [('fil', f'stage{s}', p) for s in _STAGES for p in _FIL_PARTS]
  metric = [('metric', f'stage{s}', f'cbl{j}') for s in _STAGES for j in (1, 2)]
  module = [(f'module_head{h}', f'cbl{j}') for h in _HEADS for j in (1, 2)]
  mlp = ('dense1', 'dense2', 'logit')
  convs = fil + metric + ([] if inference_only else module)
  if inference_only:
    dense = [('stage_head5', d) for d in mlp]
  else:
    dense = ([(f'module_head{h}', 'head', d) for h in _HEADS for d in mlp]
             + [(f'stage_head{h}', d) for h in _HEADS for d in mlp])
  return {'conv2d': [c + ('conv',) for c in convs],
          'batch_normalization': [c + ('bn',) for c in convs],
          'conv1d': [], 'dense': dense}


def layer_plan(inference_only: bool) -> Dict[Tuple[str, str], List[Path]]:
  """{(keras_type, 'a'|'b'|'shared'): [flax path, ...]} in Keras creation order."""
  plan = {}
  for group, paths in (('a', _branch_paths('a', inference_only)),
                       ('b', _branch_paths('b', inference_only)),
                       ('shared', _shared_paths(inference_only))):
    for t in TYPES:
      plan[(t, group)] = paths[t]
  return plan


def _parse(name: str) -> Tuple[str, str, int]:
  """'conv2d_10_2' -> ('conv2d', 'b', 10); 'conv2d' -> ('conv2d', 'a|shared', 0)."""
  branch_b = bool(_BRANCH_B.search(name))
  base = name[:-2] if branch_b else name
  m = _NAME.match(base)
  if not m:
    return '', '', -1
  num = int(m.group('num')) if m.group('num') else 0
  return m.group('type'), 'b' if branch_b else 'a_or_shared', num


_weight_key = keras_import.weight_key


def _assign(variables: Dict[str, Any], ktype: str, path: Path,
            weights: Mapping[str, np.ndarray], layer: str) -> None:
  keras_import.assign_layer(variables, ktype, path, weights, layer)


def _expected_shapes(inference_only: bool) -> Dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  model = RRLNet()
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                  score_only=inference_only), x, x)
  return jax.tree_util.tree_map(lambda s: tuple(s.shape), dict(shapes))


def _check_shapes(variables, expected, source: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  got = {jax.tree_util.keystr(k): v.shape
         for k, v in jax.tree_util.tree_leaves_with_path(variables)}
  want = {jax.tree_util.keystr(k): v for k, v in
          jax.tree_util.tree_leaves_with_path(expected,
                                              is_leaf=lambda x: isinstance(x, tuple))}
  bad = [f'{k}: file has {got[k]}, RRLNet expects {want[k]}'
         for k in want if k in got and tuple(got[k]) != tuple(want[k])]
  missing = sorted(set(want) - set(got))
  if bad or missing:
    raise ConversionError(
        f'{source}: weights do not fit the official RRL-Net: '
        + '; '.join(bad[:5] + [f'missing {m}' for m in missing[:5]]))


def variables_from_keras_layers(layers: Mapping[str, Mapping[str, np.ndarray]],
                                source: str = 'Keras weights'
                                ) -> Tuple[Dict[str, Any], bool]:
  """Maps {keras layer name: {weight name: array}} onto the Flax variable tree.

  Weight names may be 'kernel:0', 'conv2d_3/kernel:0' or 'kernel'. Layers of
  other types (inputs, activations...) are ignored. Returns (variables,
  inference_only) where inference_only says the file held just the MLPP subtree.
  """
  groups: Dict[Tuple[str, str], List[Tuple[int, str]]] = {}
  for name in layers:
    ktype, branch, num = _parse(name)
    if ktype in TYPES:
      groups.setdefault((ktype, branch), []).append((num, name))
  for members in groups.values():
    members.sort()
  counts = {k: len(v) for k, v in groups.items()}

  for inference_only in (False, True):
    plan = layer_plan(inference_only)
    fits = all(
        counts.get((t, 'b'), 0) == len(plan[(t, 'b')])
        and counts.get((t, 'a_or_shared'), 0)
        == len(plan[(t, 'a')]) + len(plan[(t, 'shared')]) for t in TYPES)
    if fits:
      break
  else:
    def describe(plan):
      return ', '.join(f'{t}: {len(plan[(t, "a")]) + len(plan[(t, "shared")])}'
                       f'+{len(plan[(t, "b")])}' for t in TYPES)
    found = ', '.join(f'{t}: {counts.get((t, "a_or_shared"), 0)}'
                      f'+{counts.get((t, "b"), 0)}' for t in TYPES)
    raise ConversionError(
        f'{source}: not the official RRL-Net layer set. Found (branch A and '
        f'shared + branch B) {found}; expected {describe(layer_plan(False))} '
        f'for the training model or {describe(layer_plan(True))} for the '
        'inference (test) model.')

  variables: Dict[str, Any] = {}
  for t in TYPES:
    a_and_shared = groups.get((t, 'a_or_shared'), [])
    n_a = len(plan[(t, 'a')])
    ordered = [(p, n) for p, (_, n) in zip(plan[(t, 'a')], a_and_shared[:n_a])]
    ordered += [(p, n) for p, (_, n) in zip(plan[(t, 'shared')], a_and_shared[n_a:])]
    ordered += [(p, n) for p, (_, n) in zip(plan[(t, 'b')], groups.get((t, 'b'), []))]
    for path, name in ordered:
      weights = {_weight_key(k): v for k, v in layers[name].items()}
      _assign(variables, t, path, weights, name)
  _check_shapes(variables, _expected_shapes(inference_only), source)
  return variables, inference_only


def keras_layers_from_variables(variables: Mapping[str, Any],
                                inference_only: bool = False) -> KerasLayers:
  """Inverse mapping with tf_keras layer names ('conv2d', 'conv2d_10_2', ...)."""
  plan = layer_plan(inference_only)
  out: KerasLayers = {}
  for t in TYPES:
    n_a, n_b = len(plan[(t, 'a')]), len(plan[(t, 'b')])
    numbered = ([(i, p, '') for i, p in enumerate(plan[(t, 'a')])]
                + [(n_a + i, p, '_2') for i, p in enumerate(plan[(t, 'b')])]
                + [(n_a + n_b + i, p, '') for i, p in enumerate(plan[(t, 'shared')])])
    for num, path, suffix in numbered:
      name = (t if num == 0 else f'{t}_{num}') + suffix

      def get(collection, leaf, path=path):
        node = variables[collection]
        for p in path:
          node = node[p]
        return np.asarray(node[leaf])
      if t == 'batch_normalization':
        out[name] = {'gamma': get('params', 'scale'), 'beta': get('params', 'bias'),
                     'moving_mean': get('batch_stats', 'mean'),
                     'moving_variance': get('batch_stats', 'var')}
      else:
        out[name] = {'kernel': get('params', 'kernel'), 'bias': get('params', 'bias')}
  return out


def read_keras_h5(path: str) -> Tuple[KerasLayers, Dict[str, Any]]:
  """Reads layer weights from a save_weights or model.save HDF5 file."""
  import h5py  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise ConversionError(f'{path}: no such file (--keras_h5).')
  try:
    f = h5py.File(path, 'r')
  except (OSError, IOError) as e:
    raise ConversionError(f'{path}: cannot open as HDF5 ({e}).') from e
  with f:
    root = f['model_weights'] if 'model_weights' in f else f
    if 'layer_names' not in root.attrs:
      raise ConversionError(f'{path}: not a Keras weights file (no layer_names '
                            'attribute at the root or under model_weights/).')
    info = {k: (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in f.attrs.items() if k in ('keras_version', 'backend')}
    layers: KerasLayers = {}
    for raw in root.attrs['layer_names']:
      name = raw.decode() if isinstance(raw, bytes) else str(raw)
      group = root[name]
      names = [n.decode() if isinstance(n, bytes) else str(n)
               for n in group.attrs.get('weight_names', [])]
      if names:
        layers[name] = {n: np.asarray(group[n]) for n in names}
  return layers, info


def zoo_variables(layers: KerasLayers, model, source: str = 'Keras weights'
                  ) -> Dict[str, Any]:
  """{keras layer: {weight: array}} (model.layers order) -> `model`'s variables."""
  import importlib  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  name = model_name(model)
  plan_fn = getattr(importlib.import_module(type(model).__module__),
                    'keras_layer_plan', None)
  if plan_fn is None:
    raise ConversionError(f'--model={name}: {type(model).__module__} has no '
                          'keras_layer_plan.')
  p = getattr(model, 'patch_size', 64)
  x = jax.ShapeDtypeStruct((1, p, p, 1), jnp.float32)
  template = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b), x, x)
  return keras_import.layers_to_variables(plan_fn(model), layers, dict(template),
                                          source=f'{source} (as {name})')


def convert_keras_h5(path: str, name: str = 'rrl_net', **model_kwargs
                     ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """Keras HDF5 -> (variables, meta) ready for checkpoint_format.save_variables."""
  try:
    model = get_model(name, **model_kwargs)
  except (TypeError, ValueError) as e:
    raise ConversionError(f'--model={name}: {e}') from None
  layers, info = read_keras_h5(path)
  if name == 'rrl_net':
    if model_kwargs:
      raise ConversionError(f'{path}: official RRL-Net files hold the paper model; '
                            f'got model arguments {model_kwargs}.')
    variables, inference_only = variables_from_keras_layers(layers, source=path)
  else:
    variables, inference_only = zoo_variables(layers, model, path), False
  meta = {'model': model_config(model), 'model_name': name,
          'inference_only': inference_only,
          'source': dict(info, keras_h5=path,
                         kind='inference' if inference_only else 'train')}
  return variables, meta



def check_output_dir(out: str) -> None:
  """Refuses an --out that is a file, a non-empty directory or not writable.

  Runs before anything heavy: converting takes a while, and Orbax waits a long
  time on a path it cannot create.
  """
  path = os.path.abspath(os.path.expanduser(out))
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConversionError(f'--out={out} is an existing file; give a new directory '
                          '(refusing to overwrite).')
  if os.path.isdir(path) and os.listdir(path):
    raise ConversionError(f'--out={out} is a non-empty directory; give a new or empty '
                          'directory (refusing to overwrite).')
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ConversionError(f'--out={out}: {parent} is a file, not a directory.')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ConversionError(f'--out={out}: directory {parent} is not writable.')

