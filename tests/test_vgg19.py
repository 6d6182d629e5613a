"""VGG19 weight loading (Keras .h5 layouts, .npz), features and the clear error."""
import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax.training import vgg19
from rrl_jax.training.vgg19 import VGG19WeightsError

pytestmark = pytest.mark.full_optimization


def _assert_same(a, b):
  assert set(a) == set(b) == {name for name, _, _ in vgg19.LAYERS}
  for name in a:
    for w in ('kernel', 'bias'):
      np.testing.assert_array_equal(np.asarray(a[name][w]), np.asarray(b[name][w]))


def test_load_keras_h5(tmp_path):
  path = str(tmp_path / vgg19.KERAS_FILENAME)
  written = vgg19.write_random_vgg19_h5(path, seed=3)
  with h5py.File(path, 'r') as f:  # the released file's conventions
    assert b'block5_conv4' in list(f.attrs['layer_names'])
    assert list(f['block1_conv1'].attrs['weight_names']) == [
        b'block1_conv1_W_1:0', b'block1_conv1_b_1:0']
  _assert_same(vgg19.load_vgg19_params(path), written)


def test_load_npz(tmp_path):
  path = str(tmp_path / 'vgg19.npz')
  written = vgg19.write_random_vgg19_npz(path, seed=3)
  _assert_same(vgg19.load_vgg19_params(path), written)
  _assert_same(written, vgg19.write_random_vgg19_h5(str(tmp_path / 'v.h5'), seed=3))


def test_load_tf_keras_nested_h5(tmp_path):
  # Files re-saved by newer Keras: OUTER/INNER/kernel:0 under 'model_weights'.
  params = vgg19.write_random_vgg19_npz(str(tmp_path / 'v.npz'), seed=1)
  path = str(tmp_path / 'nested.h5')
  with h5py.File(path, 'w') as f:
    root = f.create_group('model_weights')
    for name, w in params.items():
      g = root.create_group(name)
      g.attrs['weight_names'] = [f'{name}/bias:0'.encode(), f'{name}/kernel:0'.encode()]
      g.create_dataset(f'{name}/kernel:0', data=np.asarray(w['kernel']))
      g.create_dataset(f'{name}/bias:0', data=np.asarray(w['bias']))
  _assert_same(vgg19.load_vgg19_params(path), params)


def _features_numpy(params, x):
  """Float64 VGG19 up to block5_conv4 by explicit 3x3 windows."""
  x = x.astype(np.float64)
  for name, _, _ in vgg19.LAYERS:
    if name.endswith('conv1') and name != 'block1_conv1':
      n, h, w, c = x.shape
      x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    k = np.asarray(params[name]['kernel'], np.float64)
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    y = sum(np.einsum('nhwc,co->nhwo', p[:, i:i + h, j:j + w], k[i, j])
            for i in range(3) for j in range(3))
    x = np.maximum(y + np.asarray(params[name]['bias'], np.float64), 0)
  return x


def test_block5_conv4_features(tmp_path):
  params = vgg19.write_random_vgg19_npz(str(tmp_path / 'v.npz'))
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  got = np.asarray(vgg19.vgg19_block5_conv4(params, jnp.asarray(x)))
  want = _features_numpy(params, x)
  assert got.shape == (2, 2, 2, 512)
  assert np.max(want) > 0
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(want))
  full = vgg19.vgg19_block5_conv4(params, jnp.zeros((1, 64, 64, 3)))
  assert full.shape == (1, 4, 4, 512)


def _assert_clear(err, path):
  msg = str(err.value)
  assert path in msg
  assert '--config.vgg19_weights=' in msg and '--config.recon_loss=mse' in msg


def test_missing_file_error(tmp_path):
  path = str(tmp_path / 'absent.h5')
  with pytest.raises(VGG19WeightsError) as err:
    vgg19.load_vgg19_params(path)
  _assert_clear(err, path)
  assert 'no such file' in str(err.value)


@pytest.mark.parametrize('suffix', ['.h5', '.npz'])
def test_not_a_weight_file_error(tmp_path, suffix):
  path = str(tmp_path / f'garbage{suffix}')
  with open(path, 'w') as f:
    f.write('not weights')
  with pytest.raises(VGG19WeightsError) as err:
    vgg19.load_vgg19_params(path)
  _assert_clear(err, path)


def test_missing_layer_and_wrong_shape_errors(tmp_path):
  path = str(tmp_path / 'v.h5')
  vgg19.write_random_vgg19_h5(path)
  with h5py.File(path, 'a') as f:
    del f['block5_conv4']
  with pytest.raises(VGG19WeightsError, match='block5_conv4 is missing') as err:
    vgg19.load_vgg19_params(path)
  _assert_clear(err, path)
  npz = str(tmp_path / 'v.npz')
  np.savez(npz, **{'block1_conv1/kernel': np.zeros((3, 3, 1, 64)),
                   'block1_conv1/bias': np.zeros(64)})
  with pytest.raises(VGG19WeightsError, match=r'expected \(3, 3, 3, 64\)') as err:
    vgg19.load_vgg19_params(npz)
  _assert_clear(err, npz)


def test_no_path_error():
  with pytest.raises(VGG19WeightsError, match='no file given'):
    vgg19.load_vgg19_params('')
