"""Keras HDF5 import: file layouts, naming schemes, inference-only files, errors."""
import os
import subprocess
import sys

import h5py
import jax
import numpy as np
import pytest

from rrl_jax import convert, pruning
from rrl_jax import checkpoint_format

from conftest import KERAS_H5, REPO, require_path


def _write_h5(path, layers, keras_2_2_names=False, full_model=False):
  """Writes `layers` ({name: {weight: array}}) as Keras does (save_weights or save)."""
  def rename(name):
    if not keras_2_2_names:
      return name
    # Keras 2.2 numbers from _1 where tf_keras starts unnumbered: shift by one.
    branch_b = name.endswith('_2') and name.count('_') >= 2 and name.rsplit('_', 2)[1].isdigit()
    base = name[:-2] if branch_b else name
    head, _, num = base.rpartition('_')
    base = f'{head}_{int(num) + 1}' if num.isdigit() and head else f'{base}_1'
    return base + ('_2' if branch_b else '')

  with h5py.File(path, 'w') as f:
    root = f.create_group('model_weights') if full_model else f
    if full_model:
      f.create_group('optimizer_weights').create_dataset('iterations', data=3)
    names = []
    for name, weights in layers.items():
      new = rename(name)
      inner = new[:-2] if new.endswith('_2') and new.count('_') >= 2 else new
      group = root.create_group(new)
      wnames = []
      for w, value in weights.items():
        wname = f'{inner}/{w}:0'
        group.create_dataset(wname, data=value)
        wnames.append(wname.encode())
      group.attrs['weight_names'] = wnames
      names.append(new.encode())
    root.create_group('leaky_re_lu').attrs['weight_names'] = []
    root.attrs['layer_names'] = names + [b'leaky_re_lu']


@pytest.fixture(scope='module')
def fixture_layers():
  layers, _ = convert.read_keras_h5(require_path(KERAS_H5))
  return layers


def _assert_same_tree(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_fixture_maps_every_layer_and_round_trips(keras_variables, fixture_layers):
  variables, meta = keras_variables
  assert meta['inference_only'] is False and meta['source']['kind'] == 'train'
  assert pruning.count_parameters(variables['params']) == 12_816_740
  back = convert.keras_layers_from_variables(variables)
  assert set(back) == set(fixture_layers)
  for name, weights in fixture_layers.items():
    for w, value in weights.items():
      np.testing.assert_array_equal(back[name][convert._weight_key(w)], value)


@pytest.mark.parametrize('keras_2_2_names', [False, True])
@pytest.mark.parametrize('full_model', [False, True])
def test_layouts_and_naming_schemes(tmp_path, keras_variables, keras_2_2_names,
                                    full_model):
  variables, _ = keras_variables
  path = str(tmp_path / 'w.h5')
  _write_h5(path, convert.keras_layers_from_variables(variables),
            keras_2_2_names=keras_2_2_names, full_model=full_model)
  converted, meta = convert.convert_keras_h5(path)
  _assert_same_tree(converted, variables)
  assert meta['source']['kind'] == 'train'


def test_inference_only_test_model(tmp_path, keras_variables):
  variables, _ = keras_variables
  pruned = pruning.inference_variables(variables)
  path = str(tmp_path / 'match_model_best_test.hdf5')
  _write_h5(path, convert.keras_layers_from_variables(pruned, inference_only=True),
            keras_2_2_names=True, full_model=True)
  converted, meta = convert.convert_keras_h5(path)
  assert meta['inference_only'] is True
  _assert_same_tree(converted, pruned)


def test_missing_layer_is_reported(tmp_path, fixture_layers):
  layers = dict(fixture_layers)
  del layers['dense_17']
  path = str(tmp_path / 'w.h5')
  _write_h5(path, layers)
  with pytest.raises(convert.ConversionError,
                     match=r'w\.h5: not the official RRL-Net layer set.*dense: 17\+0'):
    convert.convert_keras_h5(path)


def test_wrong_shape_is_reported(tmp_path, fixture_layers):
  layers = {k: dict(v) for k, v in fixture_layers.items()}
  layers['conv2d_49']['conv2d_49/kernel:0'] = np.zeros((3, 3, 512, 256), np.float32)
  path = str(tmp_path / 'w.h5')
  _write_h5(path, layers)
  with pytest.raises(convert.ConversionError, match=r"metric.*stage5.*cbl2.*conv.*kernel"):
    convert.convert_keras_h5(path)


def test_not_hdf5_is_reported(tmp_path):
  path = tmp_path / 'w.h5'
  path.write_text('not hdf5')
  with pytest.raises(convert.ConversionError, match='cannot open as HDF5'):
    convert.convert_keras_h5(str(path))


def test_cli_writes_a_loadable_checkpoint(tmp_path, keras_variables):
  out = tmp_path / 'ckpt'
  cmd = [sys.executable, '-m', 'launch.convert', f'--keras_h5={KERAS_H5}',
         f'--out={out}']
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  assert '12,816,740 parameters' in done.stdout
  variables, meta = checkpoint_format.load_variables(str(out))
  assert meta['format'] == 'rrl_jax' and meta['model']['widths'] == [16, 32, 64, 128, 256]
  _assert_same_tree(variables, keras_variables[0])
  # A second conversion into the same place must not overwrite the first.
  again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert again.returncode != 0 and 'refusing to overwrite' in again.stderr
  assert 'Traceback' not in again.stderr


def test_checkpoint_errors_are_clear(tmp_path):
  with pytest.raises(checkpoint_format.CheckpointError, match='no such checkpoint'):
    checkpoint_format.load_variables(str(tmp_path / 'nope'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(checkpoint_format.CheckpointError, match='not an rrl_jax checkpoint'):
    checkpoint_format.load_variables(str(tmp_path / 'empty'))


def _convert_cli(*args):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'launch.convert', *args],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.parametrize('make', ['file', 'nonempty_dir'])
def test_cli_refuses_existing_out_at_once_in_one_line(tmp_path, make):
  out = tmp_path / 'out'
  if make == 'file':
    out.write_text('keep me')
  else:
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
  done = _convert_cli(f'--keras_h5={KERAS_H5}', f'--out={out}')
  assert done.returncode == 1
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1, done.stderr
  assert lines[0].startswith(f'launch.convert: error: --out={out}')
  assert 'refusing to overwrite' in lines[0] and 'USAGE' not in done.stderr
  kept = out if make == 'file' else out / 'notes.txt'
  assert kept.read_text() == 'keep me'


def test_cli_data_error_is_one_line_without_usage(tmp_path):
  done = _convert_cli(f'--keras_h5={tmp_path}/missing.h5', f'--out={tmp_path}/o')
  assert done.returncode == 1
  assert done.stderr.strip() == (f'launch.convert: error: {tmp_path}/missing.h5: '
                                 'no such file (--keras_h5).')
