"""launch.match: Keras-converted fixture round trip, keypoint mode, error paths."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import KERAS_FIXTURES, REPO, require_path
from launch import match
from rrl_jax.models import RRLNet
from eval_helpers import TINY, random_variables, save_tiny_checkpoint

pytestmark = [pytest.mark.heavy(seconds=40), pytest.mark.full_optimization]


@pytest.fixture(scope='session')
def tiny_ckpt(tmp_path_factory):
  model = RRLNet(**TINY)
  return save_tiny_checkpoint(tmp_path_factory.mktemp('ckpt'), model,
                              random_variables(model))


def test_keras_fixture_round_trip(tmp_path):
  """Scores of the converted official weights equal Keras' test_out (1e-4)."""
  h5 = require_path(os.path.join(KERAS_FIXTURES, 'rrl_weights_seed0.h5'))
  outputs = np.load(require_path(os.path.join(KERAS_FIXTURES, 'outputs_seed0.npz')))
  convert = pytest.importorskip('rrl_jax.convert')
  from rrl_jax import checkpoint_format
  variables, meta = convert.convert_keras_h5(h5)
  ckpt = checkpoint_format.save_variables(str(tmp_path / 'keras'), variables, meta)
  pack = np.stack([outputs['x1_u8'][..., 0], outputs['x2_u8'][..., 0]], axis=1)
  np.save(tmp_path / 'pack.npy', pack)
  scores = match.run(ckpt, str(tmp_path / 'scores.npy'),
                     pairs=str(tmp_path / 'pack.npy'), batch_size=6)  # 6+6+4
  saved = np.load(tmp_path / 'scores.npy')
  assert saved.dtype == np.float32 and saved.shape == (16,)
  np.testing.assert_array_equal(saved, scores)
  np.testing.assert_allclose(saved, outputs['test_out'][:, 0], atol=1e-4)


def test_keypoint_mode(tiny_ckpt, tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (100, 110, 3), dtype=np.uint8)
  cv2.imwrite(str(tmp_path / 'a.png'), image)
  cv2.imwrite(str(tmp_path / 'b.png'), image[..., 0])
  (tmp_path / 'kp.csv').write_text('40,40,40,40\n70,60,50,50\n')
  scores = match.run(tiny_ckpt, str(tmp_path / 's.npy'),
                     image_a=str(tmp_path / 'a.png'), image_b=str(tmp_path / 'b.png'),
                     keypoints=str(tmp_path / 'kp.csv'), batch_size=4)
  assert scores.shape == (2,) and np.all((scores > 0) & (scores < 1))


@pytest.mark.parametrize('pack,message', [
    (np.zeros((4, 2, 32, 32), np.uint8), '32x32'),
    (np.zeros((4, 2, 64, 64, 3), np.uint8), '3 channels'),
    (np.full((4, 2, 64, 64), np.inf, np.float32), 'not finite'),
    (np.zeros((0, 2, 64, 64), np.uint8), 'no pairs'),
])
def test_bad_packs(tiny_ckpt, tmp_path, pack, message):
  np.save(tmp_path / 'pack.npy', pack)
  with pytest.raises(ValueError, match=message):
    match.run(tiny_ckpt, str(tmp_path / 's.npy'), pairs=str(tmp_path / 'pack.npy'))
  assert not os.path.exists(tmp_path / 's.npy')


def test_bad_mode_flags(tiny_ckpt, tmp_path):
  with pytest.raises(ValueError, match='either --pairs'):
    match.run(tiny_ckpt, str(tmp_path / 's.npy'))
  with pytest.raises(ValueError, match='needs all of'):
    match.run(tiny_ckpt, str(tmp_path / 's.npy'), image_a='a.png')


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'launch.match', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_cli_errors_cleanly_without_traceback(tmp_path):
  np.save(tmp_path / 'pack.npy', np.zeros((2, 2, 64, 64), np.uint8))
  result = _cli(f'--checkpoint={tmp_path}', f'--pairs={tmp_path}/pack.npy',
                f'--out={tmp_path}/s.npy')
  assert result.returncode != 0
  assert 'not an rrl_jax checkpoint' in result.stderr
  assert 'Traceback' not in result.stderr


def test_cli_round_trip_tiny(tiny_ckpt, tmp_path):
  pack = np.random.default_rng(3).integers(0, 256, (5, 2, 64, 64), dtype=np.uint8)
  np.save(tmp_path / 'pack.npy', pack)
  result = _cli(f'--checkpoint={tiny_ckpt}', f'--pairs={tmp_path}/pack.npy',
                f'--out={tmp_path}/s.npy', '--batch_size=4')
  assert result.returncode == 0, result.stderr[-2000:]
  assert np.load(tmp_path / 's.npy').shape == (5,)


def test_cli_prints_real_path_and_refuses_overwrite(tiny_ckpt, tmp_path):
  """--out=X writes X.npy and says so; a second run refuses without --overwrite."""
  np.save(tmp_path / 'pack.npy', np.zeros((3, 2, 64, 64), np.uint8))
  args = (f'--checkpoint={tiny_ckpt}', f'--pairs={tmp_path}/pack.npy', f'--out={tmp_path}/s')
  first = _cli(*args)
  assert first.returncode == 0, first.stderr[-2000:]
  assert f'-> {tmp_path}/s.npy ' in first.stdout
  assert 'orbax' not in (first.stdout + first.stderr).lower()  # quiet by default
  before = (tmp_path / 's.npy').read_bytes()
  again = _cli(*args)
  assert again.returncode == 1
  assert again.stderr.strip() == (
      f'launch.match: error: --out={tmp_path}/s: {tmp_path}/s.npy exists; pass '
      '--overwrite to replace it or choose another --out.')
  assert (tmp_path / 's.npy').read_bytes() == before
  assert _cli(*args, '--overwrite').returncode == 0


def test_training_workdir_uses_its_best(tiny_ckpt, tmp_path):
  from rrl_jax import checkpoint_format  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / 'run'
  (workdir / 'checkpoints').mkdir(parents=True)
  os.symlink(tiny_ckpt, workdir / 'best')
  path, note = checkpoint_format.resolve_workdir(str(workdir))
  assert path == str(workdir / 'best')
  assert note == f'{workdir} is a training workdir: using its best checkpoint, {workdir}/best'
  assert checkpoint_format.resolve_workdir(tiny_ckpt) == (os.path.abspath(tiny_ckpt), None)
  with pytest.raises(checkpoint_format.CheckpointError, match='training workdir, its best/'):
    checkpoint_format.load_variables(str(workdir))


def test_int64_pack_names_dtype(tiny_ckpt, tmp_path):
  np.save(tmp_path / 'pack.npy', np.zeros((2, 2, 64, 64), np.int64))
  with pytest.raises(ValueError, match=r'pack.npy: patches have dtype int64; accepted: '
                     r'uint8 \(0-255\) or float in \[0, 1\]'):
    match.run(tiny_ckpt, str(tmp_path / 's.npy'), pairs=str(tmp_path / 'pack.npy'))


def test_nan_keypoint_is_named(tiny_ckpt, tmp_path):
  image = np.zeros((100, 100), np.uint8)
  cv2.imwrite(str(tmp_path / 'a.png'), image)
  (tmp_path / 'kp.csv').write_text('xa,ya,xb,yb\n40,40,40,40\nnan,50,50,50\n')
  with pytest.raises(ValueError, match=r'kp.csv:3: keypoint 2 has non-finite coordinates'):
    match.run(tiny_ckpt, str(tmp_path / 's.npy'), image_a=str(tmp_path / 'a.png'),
              image_b=str(tmp_path / 'a.png'), keypoints=str(tmp_path / 'kp.csv'))


def test_pairs_pack_is_memory_mapped_and_an_empty_file_is_one_line(tmp_path):
  path = tmp_path / 'pairs.npy'
  np.save(path, np.zeros((3, 2, 64, 64), np.uint8))
  assert isinstance(match.load_pack(str(path)), np.memmap)  # scored batch by batch
  empty = tmp_path / 'empty.npy'
  empty.write_bytes(b'')
  with pytest.raises(ValueError) as e:
    match.load_pack(str(empty))
  assert str(e.value) == f'{empty}: empty file (0 bytes); expected a .npy pairs pack.'
