"""Damaged builds, killed and failed builds, bad float packs: one line that says what to do."""
import glob
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from rrl_jax import data
from rrl_jax.data import base
from rrl_jax.evaluation import scoring

_SYNTH = dict(num_train=100, num_val=40, num_test=8)


def _built(tmp_path):
  kw = dict(_SYNTH, data_dir=str(tmp_path / 'tfds'))
  patches, labels = data.open_split('synthetic', 'val', **kw)
  return kw, os.fspath(data.get_builder('synthetic', **kw).data_dir), np.asarray(patches), labels


def _shard(version_dir):
  return sorted(glob.glob(os.path.join(version_dir, '*-val.array_record-*')))[0]


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip(path):
  middle = os.path.getsize(path) // 2
  with open(path, 'r+b') as f:
    f.seek(middle)
    chunk = f.read(64)
    f.seek(middle)
    f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {
    'deleted dataset_info': lambda v: os.remove(os.path.join(v, 'dataset_info.json')),
    'corrupt dataset_info': lambda v: open(os.path.join(v, 'dataset_info.json'), 'w').write('{"x": '),
    'truncated shard': lambda v: _truncate(_shard(v)),
    'deleted shard': lambda v: os.remove(_shard(v)),
    'bit-flipped shard': lambda v: _flip(_shard(v)),
}


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_damaged_build_names_the_directory_to_delete(tmp_path, damage):
  kw, version_dir, _, labels = _built(tmp_path)
  DAMAGE[damage](version_dir)
  with pytest.raises(data.DataError) as e:
    patches, _ = data.open_split('synthetic', 'val', **kw)
    patches[np.arange(len(labels))]  # a damaged shard may only fail when read
  message = str(e.value)
  assert '\n' not in message and f'delete {version_dir} and rerun' in message, message


@pytest.mark.parametrize('damage', ['truncated', 'same-size flipped'])
def test_damaged_label_cache_is_read_again_from_the_shards(tmp_path, damage):
  kw, version_dir, _, labels = _built(tmp_path)
  cache = os.path.join(version_dir, 'rrl_npy_cache', 'val.labels.npy')
  if damage == 'truncated':
    _truncate(cache)
  else:
    np.save(cache, 1 - np.load(cache))
  _, again = data.open_split('synthetic', 'val', **kw)
  np.testing.assert_array_equal(again, labels)


def _pack(manual, n=50):
  rng = np.random.default_rng(0)
  np.save(os.path.join(manual, 'os_train_image.npy'),
          rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8))
  np.save(os.path.join(manual, 'os_train_label.npy'), np.arange(n) % 2)


def test_builder_failure_is_one_line_naming_the_split_and_size(tmp_path, monkeypatch):
  _pack(str(tmp_path))
  real = base.examples_from_arrays

  def failing(patches, labels, prefix=''):
    for i, example in enumerate(real(patches, labels, prefix)):
      if i == 30:
        raise OSError(28, 'No space left on device')
      yield example
  monkeypatch.setattr(base, 'examples_from_arrays', failing)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path), splits=('train',))
  with pytest.raises(data.DataError) as e:
    data.open_split('os', 'train', **kw)
  message = str(e.value)
  assert '\n' not in message
  assert 'split train' in message and 'after 30 pairs' in message, message
  assert 'No space left on device' in message and 'free space' in message
  assert not glob.glob(str(tmp_path / 'tfds' / '**' / 'incomplete.*'), recursive=True)


_HANG = """
import sys, time
from rrl_jax import data
from rrl_jax.data import base
real = base.examples_from_arrays
def slow(patches, labels, prefix=''):
  for i, example in enumerate(real(patches, labels, prefix)):
    if i == 10:
      time.sleep(600)
    yield example
base.examples_from_arrays = slow
data.open_split('os', 'train', data_dir=sys.argv[1], manual_dir=sys.argv[2], splits=('train',))
"""


def test_build_killed_mid_way_leaves_nothing_behind(tmp_path):
  _pack(str(tmp_path))
  tfds_dir = str(tmp_path / 'tfds')
  proc = subprocess.Popen([sys.executable, '-c', _HANG, tfds_dir, str(tmp_path)],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  pattern = os.path.join(tfds_dir, '**', 'incomplete.*', base.OWNER_FILE)
  deadline = time.time() + 120
  while not glob.glob(pattern, recursive=True) and time.time() < deadline:
    assert proc.poll() is None, 'the build ended before it could be killed'
    time.sleep(0.2)
  assert glob.glob(pattern, recursive=True), 'the build never started writing'
  proc.kill()  # SIGKILL: nothing of TFDS's clean-up runs
  proc.wait()
  assert glob.glob(pattern, recursive=True)  # what a killed build leaves
  _, labels = data.open_split('os', 'train', data_dir=tfds_dir, manual_dir=str(tmp_path),
                              splits=('train',))
  assert len(labels) == 50
  assert not glob.glob(os.path.join(tfds_dir, '**', 'incomplete.*'), recursive=True)


def test_live_build_directories_are_kept(tmp_path):
  live = tmp_path / 'incomplete.ABCDEF_1.0.0'
  base.write_owner(live)  # this process: alive
  assert base.clean_abandoned(str(tmp_path)) == [] and live.exists()


@pytest.mark.parametrize('value, expected', [
    (np.nan, '1 values are not finite (NaN or inf)'),
    (np.inf, '1 values are not finite (NaN or inf)'),
    (None, 'every patch is constant'),
])
def test_float_pack_with_nan_inf_or_constant_patches_is_refused(tmp_path, value, expected):
  pairs = np.full((5, 2, 64, 64), 0.5, np.float32)
  if value is not None:
    pairs[3, 1, 7, 7] = value
  path = str(tmp_path / 'pairs.npy')
  np.save(path, pairs)
  with pytest.raises(ValueError) as e:
    scoring.check_pairs(np.load(path, mmap_mode='r'), 64, name=path)
  message = str(e.value)
  assert '\n' not in message and message.startswith(path) and expected in message, message
