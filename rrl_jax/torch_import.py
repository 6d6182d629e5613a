"""KGL-Net PyTorch state_dicts <-> rrl_jax variables (README "PyTorch weights").

The official training saves two state_dicts: the descriptor network
(`feature_KGL`, net-best-desc.pth) and the metric network (`feature_KGL_metric`,
net-best-desc-corr-metric.pth). `torch_plan` lists every official key with its
place in our {'params', 'batch_stats'} tree and its layout change (NCHW ->
NHWC kernels, (out, in) -> (in, out) dense kernels, (1, C, 1, 1) -> (C,)).
`from_torch` / `to_torch` work on numpy dicts (no torch needed); `load_pth` /
`save_pth` read and write .pth files with torch (the optional extra
`pip install -e '.[torch]'`), tensors only (torch.load(weights_only=True)).

Non-parameter entries: each FRN's eps buffer must equal the model's frn_eps
(it is a constant of the module); BatchNorm's num_batches_tracked (unused with
momentum 0.1) is returned in `extras` so the way back is bit-exact.
"""
import os
from typing import Any, Dict, List, Mapping, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from rrl_jax.errors import UserError

TORCH_EXTRA = "pip install -e '.[torch]'"
NUM_BATCHES = 'num_batches_tracked'
# (torch key suffix, kind) of each module type; kinds are layout changes.
_FRN = (('weight', 'channel', 'scale'), ('bias', 'channel', 'bias'), ('eps', 'eps', None))
_TLU = (('tau', 'channel', 'tau'),)
_CONV = (('weight', 'conv2d', 'kernel'), ('bias', 'vector', 'bias'))
_ECA = (('conv.0.weight', 'conv1d', 'kernel'),)
_DENSE = (('weight', 'dense', 'kernel'), ('bias', 'vector', 'bias'))

# (torch key, collection, flax path, kind) per entry.
Entry = Tuple[str, str, Tuple[str, ...], str]


class TorchWeightsError(UserError, ValueError):
  """A PyTorch weight file that does not fit the model (one line naming why)."""


def _module(prefix: str, path: Tuple[str, ...], parts) -> List[Entry]:
  out = []
  for suffix, kind, leaf in parts:
    key = f'{prefix}.{suffix}'
    out.append((key, 'eps' if kind == 'eps' else 'params',
                path + ((leaf,) if leaf else ()), kind))
  return out


def _layer(name: str, input_norm: bool, eca: bool) -> List[Entry]:
  """Entries of one official layerN_xxx nn.Sequential."""
  path = ('descriptor', name)
  seq = ([('frn_in', _FRN), ('tlu_in', _TLU)] if input_norm else [])
  seq += [('conv', _CONV), ('frn', _FRN), ('tlu', _TLU)]
  entries = []
  for i, (child, parts) in enumerate(seq):
    entries += _module(f'{name}.{i}', path + (child,), parts)
  if eca:
    entries += _module(f'{name}.{len(seq)}', path + ('eca', 'conv'), _ECA)
  return entries


def torch_plan() -> Dict[str, List[Entry]]:
  """{'descriptor': entries, 'metric': entries} in the official key order."""
  # Official attribute order: com1 layers 1-8, layer9_com1, com2 layers 1-4,
  # dif1 and dif2 layers 5-8. Even layers end in ECA; layer 1 has the input FRN.
  before = [f'layer{i}_com1' for i in range(1, 9)]
  after = ([f'layer{i}_com2' for i in range(1, 5)]
           + [f'layer{i}_dif{s}' for s in (1, 2) for i in range(5, 9)])
  layer = lambda name: _layer(name, int(name[5]) == 1, int(name[5]) % 2 == 0)
  desc: List[Entry] = [e for name in before for e in layer(name)]
  bn = ('descriptor', 'layer9_com1_bn')
  desc += _module('layer9_com1.0', ('descriptor', 'layer9_com1_conv'), _CONV)
  desc += [('layer9_com1.1.weight', 'params', bn + ('scale',), 'vector'),
           ('layer9_com1.1.bias', 'params', bn + ('bias',), 'vector'),
           ('layer9_com1.1.running_mean', 'batch_stats', bn + ('mean',), 'vector'),
           ('layer9_com1.1.running_var', 'batch_stats', bn + ('var',), 'vector'),
           (f'layer9_com1.1.{NUM_BATCHES}', 'extras', (NUM_BATCHES,), 'count')]
  desc += [e for name in after for e in layer(name)]
  metric = _module('dif_conv.0', ('metric', 'dif_conv'), _CONV)
  metric += _module('dif_conv.1', ('metric', 'dif_frn'), _FRN)
  metric += _module('dif_conv.2', ('metric', 'dif_tlu'), _TLU)
  for i, fc in enumerate(('fc1', 'fc2', 'fc3')):
    metric += _module(f'metric_net.{2 * i}', ('metric', fc), _DENSE)
  return {'descriptor': desc, 'metric': metric}


# Axis permutations (PyTorch -> flax, flax -> PyTorch) of the kernels.
_PERMUTATIONS = {'conv2d': ((2, 3, 1, 0), (3, 2, 0, 1)), 'conv1d': ((2, 1, 0),) * 2,
                 'dense': ((1, 0),) * 2}


def _to_flax(a: np.ndarray, kind: str) -> np.ndarray:
  if kind in _PERMUTATIONS:
    return np.transpose(a, _PERMUTATIONS[kind][0])
  return a.reshape(-1) if kind == 'channel' else a


def _to_torch(a: np.ndarray, kind: str) -> np.ndarray:
  if kind in _PERMUTATIONS:
    return np.transpose(a, _PERMUTATIONS[kind][1])
  return a.reshape(1, -1, 1, 1) if kind == 'channel' else a


def variable_shapes(model) -> Dict[str, Any]:
  """{'params', 'batch_stats'} shape tree of the full model (no compile)."""
  x = jax.ShapeDtypeStruct((2, model.patch_size, model.patch_size, 1), jnp.float32)
  shapes = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                  train=True), x, x)
  return {c: traverse_util.flatten_dict(dict(shapes.get(c, {})))
          for c in ('params', 'batch_stats')}


def _describe(names: List[str], what: str) -> str:
  shown = ', '.join(names[:6]) + (f' (+{len(names) - 6} more)' if len(names) > 6 else '')
  return f'{len(names)} {what}: {shown}'


def from_torch(state_dicts: Mapping[str, Mapping[str, Any]], model,
               source: str = 'the state_dicts') -> Tuple[Dict[str, Any], Dict[str, int]]:
  """{'descriptor': sd, 'metric': sd} (numpy values) -> (variables, extras).

  Raises TorchWeightsError naming every missing/unexpected key, shape mismatch
  and FRN eps that differs from model.frn_eps, in one line.
  """
  shapes = variable_shapes(model)
  flat = {'params': {}, 'batch_stats': {}}
  extras: Dict[str, int] = {}
  problems: List[str] = []
  eps = np.float32(model.frn_eps)
  for net, entries in torch_plan().items():
    sd = state_dicts.get(net, {})
    known = {e[0] for e in entries}
    missing = [e[0] for e in entries if e[0] not in sd]
    unexpected = sorted(k for k in sd if k not in known)
    if missing:
      problems.append(f'{net} lacks ' + _describe(missing, 'keys'))
    if unexpected:
      problems.append(f'{net} has ' + _describe(unexpected, 'unexpected keys'))
    bad_shape, bad_eps = [], []
    for key, coll, path, kind in entries:
      if key not in sd:
        continue
      a = np.asarray(sd[key])
      if kind == 'eps':
        if a.size != 1 or np.float32(a.reshape(-1)[0]) != eps:
          bad_eps.append(f'{key}={a.reshape(-1)[:1].tolist()}')
        continue
      if kind == 'count':
        extras[path[0]] = int(a)
        continue
      value = _to_flax(a, kind)
      want = tuple(shapes[coll][path].shape)
      if value.shape != want:
        bad_shape.append(f'{key} {tuple(a.shape)} (expected '
                         f'{tuple(_to_torch(np.zeros(want), kind).shape)})')
        continue
      flat[coll][path] = value.astype(np.float32)
    if bad_shape:
      problems.append(f'{net} ' + _describe(bad_shape, 'shape mismatches'))
    if bad_eps:
      problems.append(f'{net} FRN eps buffers differ from frn_eps={model.frn_eps}: '
                      + ', '.join(bad_eps[:4]))
  if 'dif_conv.0.weight' in state_dicts.get('descriptor', {}):
    problems.append('the two files look swapped (give DESC.pth,METRIC.pth)')
  if problems:
    raise TorchWeightsError(f'{source} do not fit {type(model).__name__}: '
                            + '; '.join(problems) + '.')
  variables = {c: traverse_util.unflatten_dict(v) for c, v in flat.items()}
  return variables, extras


def to_torch(variables: Mapping[str, Any], model,
             extras: Mapping[str, int] = None) -> Dict[str, Dict[str, np.ndarray]]:
  """variables -> {'descriptor': sd, 'metric': sd} (numpy) in the official layout."""
  extras = dict(extras or {})
  flat = {c: traverse_util.flatten_dict(dict(variables.get(c, {})))
          for c in ('params', 'batch_stats')}
  out: Dict[str, Dict[str, np.ndarray]] = {}
  for net, entries in torch_plan().items():
    sd = {}
    for key, coll, path, kind in entries:
      if kind == 'eps':
        sd[key] = np.array([model.frn_eps], np.float32)
      elif kind == 'count':
        sd[key] = np.array(extras.get(path[0], 0), np.int64)
      else:
        if path not in flat[coll]:
          raise TorchWeightsError(f'The variables lack {coll}/{"/".join(path)} '
                                  f'(needed for {net} key {key}).')
        sd[key] = np.ascontiguousarray(_to_torch(np.asarray(flat[coll][path]), kind))
    out[net] = sd
  return out


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f'Reading or writing PyTorch weights needs torch: {TORCH_EXTRA}') from None
  return torch


def load_pth(path: str) -> Dict[str, np.ndarray]:
  """A .pth state_dict as numpy arrays (tensors only: weights_only=True)."""
  torch = _torch()
  if not os.path.isfile(path):
    raise UserError(f'{path}: no such file.')
  try:
    sd = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise TorchWeightsError(f'{path}: not a tensors-only PyTorch state_dict '
                            f'({type(e).__name__}: {str(e).splitlines()[0][:200]}).') from None
  if isinstance(sd, Mapping) and 'state_dict' in sd and isinstance(sd['state_dict'], Mapping):
    sd = sd['state_dict']
  if not isinstance(sd, Mapping) or not all(hasattr(v, 'numpy') for v in sd.values()):
    raise TorchWeightsError(f'{path}: expected a state_dict (name -> tensor), got '
                            f'{type(sd).__name__}.')
  return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def save_pth(state_dict: Mapping[str, np.ndarray], path: str) -> None:
  """Writes a numpy state_dict as torch tensors (atomic: tmp file + rename)."""
  torch = _torch()
  tmp = f'{path}.tmp'
  torch.save({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, tmp)
  os.replace(tmp, path)


# Official file names (train_KGL-Net.py): descriptor and its metric network.
OFFICIAL_SUFFIXES = {'descriptor': '-desc.pth', 'metric': '-desc-corr-metric.pth'}


def convert_torch_weights(paths: str, name: str = 'kgl_net', **model_kwargs
                          ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """'DESC.pth,METRIC.pth' -> (variables, meta) for checkpoint.save_variables."""
  from rrl_jax.models import get_model, model_config  # pylint: disable=g-import-not-at-top
  if name != 'kgl_net':
    raise UserError(f'--model={name}: PyTorch weights are read for kgl_net only.')
  files = [p.strip() for p in paths.split(',')]
  if len(files) != 2 or not all(files):
    raise UserError(f'--torch_weights={paths}: expected two files, DESC.pth,METRIC.pth '
                    '(net-best-desc.pth,net-best-desc-corr-metric.pth).')
  model = get_model(name, **model_kwargs)
  state_dicts = {'descriptor': load_pth(files[0]), 'metric': load_pth(files[1])}
  variables, extras = from_torch(state_dicts, model, source=f'{files[0]},{files[1]}')
  meta = {'model': model_config(model), 'model_name': name, 'inference_only': False,
          'source': {'kind': 'train', 'torch_weights': files, 'torch_extras': extras}}
  return variables, meta


def write_torch_weights(variables: Mapping[str, Any], meta: Mapping[str, Any],
                        prefix: str) -> List[str]:
  """Checkpoint variables -> PREFIX-desc.pth, PREFIX-desc-corr-metric.pth.

  They load into the official feature_KGL / feature_KGL_metric with
  load_state_dict(strict=True). Refuses to overwrite existing files.
  """
  from rrl_jax.models import model_from_config  # pylint: disable=g-import-not-at-top
  if meta.get('model_name') != 'kgl_net':
    raise UserError(f'The checkpoint holds {meta.get("model_name")!r}; PyTorch '
                    'weights are written for kgl_net only.')
  model = model_from_config(meta['model'], 'kgl_net')
  extras = (meta.get('source') or {}).get('torch_extras') or {}
  paths = {net: f'{prefix}{suffix}' for net, suffix in OFFICIAL_SUFFIXES.items()}
  existing = [p for p in paths.values() if os.path.exists(p)]
  if existing:
    raise UserError(f'{", ".join(existing)} already exist(s); refusing to overwrite.')
  state_dicts = to_torch(jax.device_get(dict(variables)), model, extras)
  for net, path in paths.items():
    save_pth(state_dicts[net], path)
  return list(paths.values())
