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


# ---------------------------------------------------------------------------
# What every network's parity test does with the fixture.


def variable_shapes(model, score_only: bool = False) -> Dict[str, Any]:
  """jax.eval_shape of model.init on one 64x64 pair (no compile)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  return jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                score_only=score_only), x, x)


def select(tree, template):
  """The part of `tree` with the keys of `template` (e.g. the score-path subtree)."""
  if not isinstance(template, dict):
    return tree
  return {k: select(tree[k], v) for k, v in template.items()}


_FORWARDS: Dict[Tuple[str, bool, bool, str], Dict[str, Any]] = {}


def keras_forward(model, plan_fn: Callable, model_dir: str, alt: bool,
                  score_only: bool = False) -> Dict[str, Any]:
  """The model with the fixture's weights on the fixture's pairs, jitted (once).

  Returns ref (the fixture's outputs), variables, xa, xb, out and inter
  (inference outputs and intermediates), train (training-mode outputs) and,
  with score_only, z (the score_only logit on the full variables).
  """
  import jax  # pylint: disable=g-import-not-at-top
  key = (model_dir, alt, score_only, repr(model))
  if key in _FORWARDS:
    return _FORWARDS[key]
  inputs = load_outputs(model_dir, alt=False)  # the inputs live in outputs.npz
  xa, xb = inputs['x_a'], inputs['x_b']
  variables = keras_variables(model, plan_fn, model_dir, alt)
  infer = jax.jit(lambda v, a, b: model.apply(v, a, b, mutable=['intermediates']))
  train = jax.jit(lambda v, a, b: model.apply(v, a, b, train=True,
                                              mutable=['batch_stats'])[0])
  out, inter = infer(variables, xa, xb)
  run = dict(ref=load_outputs(model_dir, alt), variables=variables, xa=xa, xb=xb,
             out=out, inter=inter['intermediates'], train=train(variables, xa, xb))
  if score_only:
    run['z'] = jax.jit(lambda v, a, b: model.apply(v, a, b, score_only=True))(
        variables, xa, xb)
  _FORWARDS[key] = run
  return run


def assert_output_matches(run: Dict[str, Any], name: str, keras_index: Dict[str, int],
                          view: Callable, train: bool = False) -> None:
  """view(our output `name`) against Keras out<i> (1e-4), or train_out<i> (1e-3)."""
  prefix = 'train_out' if train else 'out'
  np.testing.assert_allclose(view(run['train' if train else 'out'][name]),
                             run['ref'][f'{prefix}{keras_index[name]}'], rtol=0,
                             atol=1e-3 if train else 1e-4)


def assert_score_matches(model, run: Dict[str, Any]) -> None:
  """P(match) of the score_only z equals the outputs' (1e-6) and the fixture's (1e-4)."""
  prob = np.asarray(model.match_probability(run['z']))
  np.testing.assert_allclose(prob, np.asarray(model.match_probability(run['out'])),
                             rtol=0, atol=1e-6)
  np.testing.assert_allclose(prob, run['ref']['score'], rtol=0, atol=1e-4)


def score_path_only(model, run: Dict[str, Any]):
  """(score-path subtree of run's variables, the score_only logit from it alone)."""
  import jax  # pylint: disable=g-import-not-at-top
  pruned = select(run['variables'], variable_shapes(model, score_only=True))
  z = jax.jit(lambda v, a, b: model.apply(v, a, b, score_only=True))(
      pruned, run['xa'], run['xb'])
  return pruned, z


def sigmoid_errors(outputs, ref, prefix: str, keras_index: Dict[str, int]
                   ) -> Dict[str, float]:
  """max |sigmoid(ours) - Keras| per output (Keras stores (N, 1) probabilities)."""
  import jax  # pylint: disable=g-import-not-at-top
  return {name: float(np.abs(np.asarray(jax.nn.sigmoid(outputs[name]))
                             - ref[f'{prefix}{k}'][:, 0]).max())
          for name, k in keras_index.items()}


def assert_activations(ours: Dict[str, Any], ref, rtol: float, atol: float,
                       scaled: bool = False) -> None:
  """Each act__KEY of the fixture against ours[KEY] (first batch entry onward).

  4-D maps are stored cut to [:2, ..., :2]; scaled: atol times max(1, max|ref|).
  """
  for key, got in ours.items():
    want = ref[f'act__{key}']
    got = np.asarray(got)
    if got.shape != want.shape:  # stored as [:2, ..., :2]
      got = got[:2, ..., :2]
    tol = atol * max(1.0, float(np.abs(want).max())) if scaled else atol
    np.testing.assert_allclose(got, want, rtol=rtol, atol=tol, err_msg=key)


def assert_plan_round_trip(plan, variables, template=None):
  """Flax -> Keras layers (the plan) -> Flax is the identity; returns the result."""
  import jax  # pylint: disable=g-import-not-at-top
  from rrl_jax import keras_import  # pylint: disable=g-import-not-at-top
  layers = keras_import.variables_to_layers(plan, variables)
  back = keras_import.layers_to_variables(plan, layers,
                                          variables if template is None else template)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, dict(variables))
  return back
