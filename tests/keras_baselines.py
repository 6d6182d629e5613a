"""The Keras baseline fixtures (../shared/fixtures/keras_baselines, README there).

`rule_layers(model_dir, alt)` rebuilds every weight of an official model from
layers.tsv with the fixture's deterministic rule, as {layer: {weight: array}}
in model.layers order; `keras_variables` maps them onto a Flax model through
its `keras_layer_plan` (rrl_jax.keras_import).
"""
import collections
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

from conftest import SHARED

FIXTURES = os.path.join(SHARED, 'fixtures', 'keras_baselines')
# Registry name -> fixture directory.
MODEL_DIRS = {'scfdm': 'SCFDM', 'afd_net': 'AFD', 'mfd_net': 'MFD',
              'efr_net': 'EFR', 'fil_net': 'FIL'}
_CHUNK = 1 << 22  # rule evaluated in chunks: MFD's largest kernel has 53 M values


def require_fixtures(model_dir: str = '') -> str:
  """The fixture directory (of one model if given); skips the test if absent."""
  path = os.path.join(FIXTURES, model_dir) if model_dir else FIXTURES
  if not os.path.isdir(path):
    pytest.skip(f'{path} is absent: this test needs ../shared beside the repository.')
  return path


def read_tsv(path: str) -> List[Dict[str, str]]:
  with open(path) as f:
    head, *rows = [line.rstrip('\n').split('\t') for line in f]
  return [dict(zip(head, r + [''] * (len(head) - len(r)))) for r in rows]


def layer_rows(model_dir: str) -> List[Dict[str, str]]:
  """layers.tsv: one row per weight tensor, in model.weights order."""
  return read_tsv(os.path.join(require_fixtures(model_dir), 'layers.tsv'))


def graph_rows(model_dir: str) -> List[Dict[str, str]]:
  """graph.tsv: one row per layer, in model.layers order."""
  return read_tsv(os.path.join(require_fixtures(model_dir), 'graph.tsv'))


def parse_shape(text: str) -> Tuple[int, ...]:
  return tuple(int(x) for x in text.strip('()').split(',') if x)


def rule_weight(index: int, kind: str, shape, kernel_scale: float = 1.0,
                fullrank: bool = False) -> np.ndarray:
  """The fixture README's weight rule for tensor `index` of model.weights (float32)."""
  shape = tuple(int(s) for s in shape)
  n = int(np.prod(shape))
  out = np.empty(n, np.float32)
  for start in range(0, n, _CHUNK):
    ti = np.arange(start, min(n, start + _CHUNK), dtype=np.int64)
    phase = 0.731 * ti.astype(np.float64) + 0.173 * index
    if kind == 'kernel' and fullrank:
      phase = phase + 2.0 * np.pi * ((ti * ti) % 65521) / 65521.0
    base = np.sin(phase)
    if kind == 'kernel':
      fan_in = int(np.prod(shape[:-1]))
      w = base * np.sqrt(2.0 / fan_in) * 0.8 * kernel_scale
    elif kind == 'bias':
      w = 0.02 * base
    elif kind == 'gamma':
      w = 1.0 + 0.1 * base
    elif kind in ('beta', 'moving_mean'):
      w = 0.05 * base
    elif kind == 'moving_variance':
      w = 1.0 + 0.25 * (base + 1.0)
    else:
      raise ValueError(f'no rule for weight kind {kind!r}')
    out[start:start + len(ti)] = w
  return out.reshape(shape)


def load_outputs(model_dir: str, alt: bool) -> Dict[str, np.ndarray]:
  """outputs_alt.npz (alt) or outputs.npz as a dict.

  The alt file holds no inputs (they are outputs.npz's): x_a, x_b are added.
  """
  name = 'outputs_alt.npz' if alt else 'outputs.npz'
  with np.load(os.path.join(require_fixtures(model_dir), name)) as z:
    out = dict(z)
  if alt and 'x_a' not in out:
    with np.load(os.path.join(FIXTURES, model_dir, 'outputs.npz')) as z:
      out.update({k: z[k] for k in z.files if k.startswith('x_')})
  return out


def rule_settings(model_dir: str, alt: bool) -> Tuple[bool, Dict[int, float]]:
  """(fullrank, {kernel rank: scale}) of a variant, as stored in its npz."""
  name = 'outputs_alt.npz' if alt else 'outputs.npz'
  with np.load(os.path.join(require_fixtures(model_dir), name)) as z:
    scales = tuple(float(s) for s in z['kernel_scales_conv2d_conv1d_dense'])
    return bool(z['fullrank']), dict(zip((4, 3, 2), scales))


def rule_layers(model_dir: str, alt: bool) -> Dict[str, Dict[str, np.ndarray]]:
  """{layer_name: {weight_name: array}} of the whole model in layers.tsv order."""
  fullrank, scales = rule_settings(model_dir, alt)
  layers: Dict[str, Dict[str, np.ndarray]] = collections.OrderedDict()
  for row in layer_rows(model_dir):
    shape, kind = parse_shape(row['shape']), row['weight_name']
    scale = scales[len(shape)] if kind == 'kernel' else 1.0
    layers.setdefault(row['layer_name'], {})[kind] = rule_weight(
        int(row['index']), kind, shape, scale, fullrank)
  return layers


def keras_variables(model, plan_fn: Callable, model_dir: str,
                    alt: bool) -> Dict[str, Any]:
  """The model's Flax variables with every weight set by the fixture's rule."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from rrl_jax import keras_import  # pylint: disable=g-import-not-at-top
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  template = jax.eval_shape(
      lambda a, b: model.init(jax.random.PRNGKey(0), a, b), x, x)
  return keras_import.layers_to_variables(plan_fn(model), rule_layers(model_dir, alt),
                                          template, source=f'{model_dir}/layers.tsv')
