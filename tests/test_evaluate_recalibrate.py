"""launch.evaluate --recalibrate_*: precise BN for an existing checkpoint."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from launch import evaluate
from rrl_jax import checkpoint_format
from rrl_jax.models import RRLNet
from eval_helpers import TINY, random_variables, save_tiny_checkpoint
from tests.train_helpers import REPO, max_abs_diff


def _split(n, seed):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8),
          (np.arange(n) % 2).astype(np.int32))


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  model = RRLNet(**TINY)
  path = save_tiny_checkpoint(tmp_path_factory.mktemp('src'), model,
                              random_variables(model))
  return path, jax.device_get(checkpoint_format.load_variables(path)[0])


def test_writes_a_new_checkpoint_and_keeps_the_input(source, tmp_path):
  path, before = source
  out = str(tmp_path / 'bn')
  evaluate.recalibrate_checkpoint(path, out, _split(24, 0), split='train',
                                  batches=2, batch_size=8)
  after = jax.device_get(checkpoint_format.load_variables(path)[0])
  assert max_abs_diff(before, after) == 0.0  # input untouched
  new, meta = checkpoint_format.load_variables(out)
  assert meta['bn_statistics'] == {'kind': 'recalibrated', 'batches': 2,
                                   'batch_size': 8, 'augment': False,
                                   'split': 'train'}
  assert max_abs_diff(new['params'], before['params']) == 0.0
  assert max_abs_diff(new['batch_stats'], before['batch_stats']) > 1e-3
  moving = checkpoint_format.load_moving_batch_stats(out)
  assert max_abs_diff(moving, before['batch_stats']) == 0.0
  with pytest.raises(ValueError, match='refusing to overwrite'):
    evaluate.recalibrate_checkpoint(path, out, _split(24, 0), split='train',
                                    batches=2, batch_size=8)
  with pytest.raises(ValueError, match='refusing to overwrite'):
    evaluate.recalibrate_checkpoint(path, path, _split(24, 0), split='train',
                                    batches=2, batch_size=8)

  # Evaluating it reports both statistics side by side.
  splits = {'test': _split(16, 1)}
  rec = evaluate.run(out, str(tmp_path / 'r'), dataset='synthetic', batch_size=8,
                     split_data=splits)
  plain = evaluate.run(path, str(tmp_path / 'r0'), dataset='synthetic',
                       batch_size=8, split_data=splits)
  assert rec['bn_statistics']['kind'] == 'recalibrated'
  assert plain['bn_statistics']['kind'] == 'moving_average'
  assert rec['splits']['test']['moving_average']['fpr95'] == pytest.approx(
      plain['splits']['test']['fpr95'], abs=1e-9)
  with open(tmp_path / 'r' / 'results.md') as f:
    text = f.read()
  assert 'recalibrated over 2 un-augmented batches of 8 pairs of split train' in text
  assert 'FPR95 (%) moving averages' in text


CONFIG = '''
import ml_collections
from configs import default
def get_config(arg=''):
  c = default.get_config()
  c.dataset.name = 'synthetic'
  c.dataset.data_dir = {data_dir!r}
  c.dataset.builder_kwargs = ml_collections.ConfigDict(dict(
      num_train=16, num_val=0, num_test=8, seed=0, difficulty=0.1))
  return c
'''


def test_command_line(source, tmp_path):
  path, _ = source
  cfg = tmp_path / 'cfg.py'
  cfg.write_text(CONFIG.format(data_dir=str(tmp_path / 'tfds')))
  out = str(tmp_path / 'bn')
  cmd = [sys.executable, '-m', 'launch.evaluate', f'--checkpoint={path}',
         f'--config={cfg}', '--recalibrate_split=train', '--recalibrate_batches=2',
         '--recalibrate_batch_size=8', f'--recalibrated_out={out}',
         f'--out={tmp_path / "r"}', '--batch_size=8', '--mgla_pairs=0']
  env = dict(os.environ, PYTHONPATH=REPO)
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f'Recalibrated checkpoint written to {out}' in done.stdout
  with open(tmp_path / 'r' / 'results.json') as f:
    record = json.load(f)
  assert record['bn_statistics']['split'] == 'train'
  assert 'moving_average' in record['splits']['test']
  again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert again.returncode != 0 and 'holds a previous evaluation' in again.stderr
  again = subprocess.run(cmd + ['--overwrite'], capture_output=True, text=True,
                         env=env, cwd=REPO)
  assert again.returncode != 0 and 'refusing to overwrite' in again.stderr
  assert os.path.exists(tmp_path / 'r' / 'results.json')  # Refused: kept whole.
