"""User files are never unpickled: an object array in a .npy is refused in one line
and its pickle payload never runs (launch.match packs, the npy-pack builders)."""
import os

import numpy as np
import pytest

from launch import match
from rrl_jax import data


class _Payload:
  """Unpickling this creates the directory `marker`: proof that code ran."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.mkdir, (self.marker,))


def _pickled_npy(path, marker, shape):
  array = np.empty(shape, dtype=object)
  array.flat[0] = _Payload(str(marker))
  np.save(path, array, allow_pickle=True)


def test_match_refuses_a_pickled_pairs_pack(tmp_path):
  marker = tmp_path / 'code_ran'
  _pickled_npy(tmp_path / 'pack.npy', marker, (2, 2, 64, 64))
  with pytest.raises(ValueError) as e:
    match.run(None, str(tmp_path / 's'), pairs=str(tmp_path / 'pack.npy'))
  assert str(e.value) == (f'{tmp_path}/pack.npy: holds pickled Python objects (an object '
                          'array); rrl_jax never unpickles input files: save a numeric '
                          'uint8 array (N, 2, 64, 64).')
  assert not marker.exists() and not (tmp_path / 's.npy').exists()


@pytest.mark.parametrize('pickled', ['sne_train_image.npy', 'sne_train_label.npy'])
def test_npy_pack_builder_refuses_pickled_packs(tmp_path, pickled):
  marker = tmp_path / 'code_ran'
  rng = np.random.default_rng(0)
  for split in ('train', 'test'):
    np.save(tmp_path / f'sne_{split}_image.npy',
            rng.integers(0, 256, (4, 2, 64, 64), dtype=np.uint8))
    np.save(tmp_path / f'sne_{split}_label.npy', np.arange(4) % 2)
  _pickled_npy(tmp_path / pickled, marker, (4, 2, 64, 64) if 'image' in pickled else (4,))
  with pytest.raises(data.DataFormatError) as e:
    data.load_split('sen1_2', 'train', data_dir=str(tmp_path / 'tfds'),
                    manual_dir=str(tmp_path))
  assert str(e.value).startswith(f'{tmp_path}/{pickled}: not a readable .npy array')
  assert '\n' not in str(e.value)
  assert not marker.exists()
