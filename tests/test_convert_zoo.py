"""Keras HDF5 import of the comparison networks (convert --model=NAME).

The files are written here with h5py as the official code's model.save /
save_weights lay them out: every layer of graph.tsv in model.layers order under
`layer_names`, weights named '<inner layer name>/<weight>:0' (branch copies keep
the inner name of the layer they were copied from).
"""
import importlib.util
import os
import re
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import convert, keras_import, pruning
from rrl_jax import checkpoint_format
from rrl_jax.models import MODELS, get_model, model_from_config

from conftest import REPO
import keras_baselines as kb

pytestmark = [pytest.mark.heavy(seconds=60), pytest.mark.full_optimization]

# Reduced widths with the official topology (same layers, same order).
REDUCED = {
    'scfdm': dict(widths=(4, 8, 8, 8, 8, 8), head_hidden=(16, 8)),
    'afd_net': dict(widths=(4, 8, 8, 8), head_hidden=(8, 4)),
    'efr_net': dict(widths=(4, 8, 8, 8), head_hidden=(8, 4)),
    'fil_net': dict(widths=(4, 4, 8, 8, 8), metric_widths=(8, 8, 8, 8, 8),
                    head_hidden=(8, 4)),
    'mfd_net': dict(feature_widths=(4, 4, 8, 8, 8), diff_widths=(4, 8, 8, 8, 8, 8),
                    fuse_width=8, head_hidden=(8,) * 7),
}
# Full-size conversion + forward pass against the fixture's score (MFD's 151 M
# parameters are only converted at reduced width).
FULL_SIZE = ('scfdm', 'afd_net', 'efr_net', 'fil_net')
KERAS_TYPES = {'Conv2D': 'conv2d', 'Conv1D': 'conv1d', 'Dense': 'dense',
               'BatchNormalization': 'batch_normalization',
               'InstanceNormalization': 'instance_normalization'}


def _require_module(name):
  module = MODELS[name].split(':')[0]
  if importlib.util.find_spec(module) is None:
    pytest.skip(f'{module} does not exist (yet).')
  return importlib.import_module(module)


def _inner(name):
  """Weight-name prefix: official branch copies were renamed after being built."""
  return re.sub(r'_[2-8]$', '', name)


def write_h5(path, layers, layer_order, full_model=False):
  """`layers` {name: {weight: array}} as Keras writes them, in `layer_order`."""
  with h5py.File(path, 'w') as f:
    f.attrs['keras_version'] = b'2.2.5'
    f.attrs['backend'] = b'tensorflow'
    root = f.create_group('model_weights') if full_model else f
    if full_model:
      f.attrs['model_config'] = b'{"class_name": "Model"}'
      f.create_group('optimizer_weights').create_dataset('iterations', data=7)
    for name in layer_order:
      group = root.create_group(name)
      wnames = []
      for w, value in layers.get(name, {}).items():
        wname = f'{_inner(name)}/{w}:0'
        group.create_dataset(wname, data=value)
        wnames.append(wname.encode())
      group.attrs['weight_names'] = wnames
    root.attrs['layer_names'] = [n.encode() for n in layer_order]


def _graph_order(model_dir):
  return [r['layer_name'] for r in kb.graph_rows(model_dir)]


def _official_names(model_dir):
  """{keras type: [layer name, ...]} in layers.tsv order."""
  names = {}
  for r in kb.layer_rows(model_dir):
    t = KERAS_TYPES[r['layer_class']]
    if r['layer_name'] not in names.get(t, []):
      names.setdefault(t, []).append(r['layer_name'])
  return names


def _same_tree(a, b):
  a = {c: a[c] for c in ('params', 'batch_stats')}
  b = {c: b[c] for c in ('params', 'batch_stats')}
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize('name', sorted(REDUCED))
@pytest.mark.parametrize('full_model', [False, True], ids=['save_weights', 'save'])
def test_reduced_width_round_trip_with_official_names(tmp_path, name, full_model):
  module = _require_module(name)
  model_dir = kb.MODEL_DIRS[name]
  model = get_model(name, **REDUCED[name])
  plan = module.keras_layer_plan(model)
  names = _official_names(model_dir)
  assert {t: len(p) for t, p in plan.items() if p} == {t: len(n) for t, n in names.items()}
  x = jnp.zeros((2, 64, 64, 1), jnp.float32)
  variables = model.init(jax.random.PRNGKey(3), x, x)
  layers = keras_import.variables_to_layers(plan, variables, names)
  path = str(tmp_path / 'match_model_best.hdf5')
  write_h5(path, layers, _graph_order(model_dir), full_model=full_model)
  converted, meta = convert.convert_keras_h5(path, name, **REDUCED[name])
  _same_tree(converted, variables)
  assert meta['model_name'] == name and meta['inference_only'] is False
  assert model_from_config(meta['model']) == model


@pytest.mark.parametrize('name', FULL_SIZE)
def test_fixture_rule_file_gives_the_keras_score(tmp_path, name):
  _require_module(name)
  model_dir = kb.MODEL_DIRS[name]
  layers = kb.rule_layers(model_dir, alt=True)
  # Layer names need not be the tf_keras ones (Keras 2.2 numbers from _1):
  # only the type and the model.layers order count.
  renamed = {n: f'layer{k}' for k, n in enumerate(_graph_order(model_dir))}
  path = str(tmp_path / 'match_model_best.hdf5')
  write_h5(path, {renamed[n]: w for n, w in layers.items()},
           [renamed[n] for n in _graph_order(model_dir)], full_model=True)
  variables, _ = convert.convert_keras_h5(path, name)
  model = get_model(name)
  z = kb.load_outputs(model_dir, alt=True)
  score = jax.jit(lambda v, a, b: pruning.match_probability(model, v, a, b))(
      pruning.inference_variables(variables, model), jnp.asarray(z['x_a']),
      jnp.asarray(z['x_b']))
  err = float(np.max(np.abs(np.asarray(score) - z['score'])))
  print(f'{name}: converted-file score max|diff| {err:.1e}')
  assert err < 1e-4


def test_wrong_network_and_layer_order_are_reported(tmp_path):
  _require_module('scfdm')
  layers = kb.rule_layers('SCFDM', alt=False)
  path = str(tmp_path / 'w.h5')
  order = _graph_order('SCFDM')
  write_h5(path, layers, order)
  with pytest.raises(convert.ConversionError,
                     match=r'w\.h5 \(as afd_net\): the Keras layers do not fit'):
    convert.convert_keras_h5(path, 'afd_net')
  # Two conv layers swapped in model.layers order: the shapes no longer fit.
  i, j = order.index('conv2d_1'), order.index('conv2d_2')
  order[i], order[j] = order[j], order[i]
  write_h5(path, layers, order)
  with pytest.raises(convert.ConversionError, match=r"has shape \(3, 3, 128, 256\).*cbr2/conv"):
    convert.convert_keras_h5(path, 'scfdm')
  with pytest.raises(convert.ConversionError, match='Unknown model'):
    convert.convert_keras_h5(path, 'resnet')


def test_cli_converts_scfdm_to_a_loadable_checkpoint(tmp_path):
  _require_module('scfdm')
  path = str(tmp_path / 'match_model_best.hdf5')
  layers = kb.rule_layers('SCFDM', alt=True)
  write_h5(path, layers, _graph_order('SCFDM'), full_model=True)
  out = tmp_path / 'ckpt'
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-m', 'launch.convert', '--model=scfdm',
         f'--keras_h5={path}', f'--out={out}']
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  assert '6,469,122 parameters' in done.stdout and '2,432 BatchNorm' in done.stdout
  variables, meta = checkpoint_format.load_variables(str(out))
  assert meta['model_name'] == 'scfdm' and meta['model']['model_name'] == 'scfdm'
  assert type(model_from_config(meta['model'])).__name__ == 'SCFDM'
  np.testing.assert_array_equal(np.asarray(variables['params']['cbr6']['conv']['kernel']),
                                layers['conv2d_5']['kernel'])
  bad = subprocess.run(cmd[:3] + ['--model=nope', f'--keras_h5={path}',
                                  f'--out={tmp_path / "other"}'],
                       capture_output=True, text=True, env=env, cwd=REPO)
  assert bad.returncode != 0 and 'Unknown model' in bad.stderr
  assert 'Traceback' not in bad.stderr
