"""Frozen VGG19 (ImageNet, no top) up to block5_conv4, for the perceptual loss.

The reconstruction term (docs/training.md) compares VGG19
block5_conv4 features (after its ReLU). Weights cannot be downloaded at run
time: they are read from the file Keras users have on disk,
`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` (HDF5, one group per layer;
the datasets of a layer are listed in order by the group's `weight_names`
attribute: kernel (3, 3, in, out) then bias), or from an `.npz` holding
`<layer>/kernel` and `<layer>/bias`.
"""
import os
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax.errors import UserError

# (block, convs per block, width) of VGG19.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
LAYERS: Tuple[Tuple[str, int, int], ...] = tuple(
    (f'block{b}_conv{i + 1}', cin, width)
    for b, n, width in _BLOCKS
    for i, cin in enumerate([(3, 64, 128, 256, 512)[b - 1]] + [width] * (n - 1)))
KERAS_FILENAME = 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
_FIX = (f'Fix: pass --config.vgg19_weights=/path/to/{KERAS_FILENAME} (the Keras '
        'ImageNet VGG19 no-top weights, or an .npz with <layer>/kernel and '
        '<layer>/bias), or train without the perceptual term: '
        '--config.recon_loss=mse.')

Params = Dict[str, Dict[str, jax.Array]]


class VGG19WeightsError(UserError, ValueError):
  """The VGG19 weight file is missing or not in a known layout."""

  def __init__(self, path: str, problem: str):
    super().__init__(f'VGG19 weights {path!r}: {problem}. {_FIX}')
    self.path = path


def _check(path: str, params: Dict[str, Dict[str, np.ndarray]]) -> Params:
  out = {}
  for name, cin, cout in LAYERS:
    if name not in params:
      raise VGG19WeightsError(path, f'layer {name} is missing')
    kernel, bias = params[name].get('kernel'), params[name].get('bias')
    if kernel is None or bias is None:
      raise VGG19WeightsError(path, f'layer {name} lacks a kernel or a bias')
    if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
      raise VGG19WeightsError(
          path, f'layer {name} has kernel {kernel.shape} and bias {bias.shape}, '
          f'expected (3, 3, {cin}, {cout}) and ({cout},)')
    out[name] = {'kernel': jnp.asarray(kernel, jnp.float32),
                 'bias': jnp.asarray(bias, jnp.float32)}
  return out


def _datasets(group) -> list:
  """The datasets of one h5 layer group, in the Keras `weight_names` order."""
  import h5py  # pylint: disable=g-import-not-at-top
  names = group.attrs.get('weight_names')
  if names is not None and len(names):
    return [np.asarray(group[n.decode() if isinstance(n, bytes) else n])
            for n in names]
  found = []
  group.visititems(lambda _, obj: found.append(np.asarray(obj))
                   if isinstance(obj, h5py.Dataset) else None)
  return found


def _read_h5(path: str) -> Dict[str, Dict[str, np.ndarray]]:
  import h5py  # pylint: disable=g-import-not-at-top
  params = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    for name, _, _ in LAYERS:
      if name not in root:
        continue
      arrays = _datasets(root[name])
      kernels = [a for a in arrays if a.ndim == 4]
      biases = [a for a in arrays if a.ndim == 1]
      params[name] = {'kernel': kernels[0] if kernels else None,
                      'bias': biases[0] if biases else None}
  return params


def _read_npz(path: str) -> Dict[str, Dict[str, np.ndarray]]:
  params: Dict[str, Dict[str, np.ndarray]] = {}
  with np.load(path, allow_pickle=False) as data:
    for key in data.files:
      layer, _, weight = key.partition('/')
      weight = weight.split(':')[0]
      params.setdefault(layer, {})[weight] = np.asarray(data[key])
  return params


def load_vgg19_params(path: str) -> Params:
  """Reads VGG19 conv weights (block1_conv1..block5_conv4) from .h5 or .npz.

  Raises VGG19WeightsError naming the path, the problem and the fix.
  """
  if not path:
    raise VGG19WeightsError(str(path), 'no file given')
  if not os.path.isfile(path):
    raise VGG19WeightsError(path, 'no such file')
  try:
    if path.endswith('.npz'):
      raw = _read_npz(path)
    else:
      raw = _read_h5(path)
  except Exception as e:  # pylint: disable=broad-except
    raise VGG19WeightsError(
        path, f'cannot be read as {"npz" if path.endswith(".npz") else "HDF5"} '
        f'({type(e).__name__}: {e})') from e
  return _check(path, raw)


def vgg19_block5_conv4(params: Params, x_rgb: jax.Array) -> jax.Array:
  """VGG19 features at block5_conv4 (after ReLU) of NHWC RGB images (as given)."""
  x = x_rgb.astype(jnp.float32)
  for name, _, _ in LAYERS:
    if name.endswith('conv1') and name != 'block1_conv1':
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                (1, 2, 2, 1), 'VALID')
    x = jax.lax.conv_general_dilated(
        x, params[name]['kernel'], (1, 1), 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    x = jax.nn.relu(x + params[name]['bias'])
  return x


def _random_layers(seed: int) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  rng = np.random.default_rng(seed)
  layers = {}
  for name, cin, cout in LAYERS:
    std = np.sqrt(2.0 / (9 * cin))
    layers[name] = (rng.normal(0, std, (3, 3, cin, cout)).astype(np.float32),
                    rng.normal(0, 0.01, (cout,)).astype(np.float32))
  return layers


def write_random_vgg19_h5(path: str, seed: int = 0) -> Params:
  """Test utility: random VGG19 weights in the Keras notop .h5 layout.

  Layout of Keras's released file: root attrs `layer_names`, one group per
  layer (pools and input too, empty), datasets `<layer>_W_1:0`, `<layer>_b_1:0`
  listed by the group attribute `weight_names`. Returns the parameters.
  """
  import h5py  # pylint: disable=g-import-not-at-top
  layers = _random_layers(seed)
  names = ['input_1']
  for b, n, _ in _BLOCKS:
    names += [f'block{b}_conv{i + 1}' for i in range(n)] + [f'block{b}_pool']
  with h5py.File(path, 'w') as f:
    f.attrs['layer_names'] = np.array([n.encode() for n in names])
    f.attrs['backend'] = b'tensorflow'
    f.attrs['keras_version'] = b'2.2.4'
    for name in names:
      group = f.create_group(name)
      if name in layers:
        weight_names = [f'{name}_W_1:0', f'{name}_b_1:0']
        group.attrs['weight_names'] = np.array([w.encode() for w in weight_names])
        group.create_dataset(weight_names[0], data=layers[name][0])
        group.create_dataset(weight_names[1], data=layers[name][1])
      else:
        group.attrs['weight_names'] = np.array([], dtype='S1')
  return {k: {'kernel': jnp.asarray(w), 'bias': jnp.asarray(b)}
          for k, (w, b) in layers.items()}


def write_random_vgg19_npz(path: str, seed: int = 0) -> Params:
  """Test utility: the same random weights as an .npz (`<layer>/kernel|bias`)."""
  layers = _random_layers(seed)
  arrays = {}
  for name, (w, b) in layers.items():
    arrays[f'{name}/kernel'], arrays[f'{name}/bias'] = w, b
  np.savez(path, **arrays)
  return {k: {'kernel': jnp.asarray(w), 'bias': jnp.asarray(b)}
          for k, (w, b) in layers.items()}
