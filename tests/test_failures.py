"""NaN stop, config-mismatch refusal, bad configs, damaged workdirs, two runs."""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from rrl_jax import checkpoint_format
from rrl_jax.training import train
from tests.train_helpers import REPO, config_flags_for, max_abs_diff, params_of
from tests.train_helpers import python_env, run_python, tiny_config

pytestmark = pytest.mark.heavy(seconds=165)


@pytest.fixture(scope='module')
def two_steps(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('two_steps'))
  train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  return workdir


def test_nan_loss_stops_naming_step_and_terms(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  config = tiny_config(num_train_steps=4)
  config.loss_weights.recon_b = float('nan')
  with pytest.raises(train.NonFiniteLossError) as e:
    train.train_and_evaluate(config, workdir, allow_config_change=True)
  msg = str(e.value)
  assert 'step 3' in msg and 'recon_b' in msg and 'stage3' not in msg
  assert os.path.join('checkpoints', '2') in msg
  ckpt = os.path.join(workdir, 'checkpoints')
  assert sorted(checkpoint_format.manager(ckpt).all_steps()) == [2]
  assert max_abs_diff(params_of(workdir), params_of(two_steps)) == 0.0


def test_config_mismatch_is_refused(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  with pytest.raises(train.ConfigMismatchError) as e:
    train.train_and_evaluate(tiny_config(num_train_steps=2, seed=7), workdir)
  assert 'seed: 0 -> 7' in str(e.value) and '--allow_config_change' in str(e.value)


def test_run_length_change_and_allowed_change(two_steps, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  # Run-length fields may change; other changes need allow_change.
  train.check_and_save_config(tiny_config(num_train_steps=9, log_every=3),
                              workdir, allow_change=False)
  train.check_and_save_config(tiny_config(seed=5), workdir, allow_change=True)
  with pytest.raises(train.ConfigMismatchError):
    train.check_and_save_config(tiny_config(seed=6), workdir, allow_change=False)


def test_run_saved_before_moving_average_rule_resumes_as_plain(tmp_path):
  """A config.json without bn_moving_average is a run trained with 'plain'."""
  import json  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'old')
  train.check_and_save_config(tiny_config(), workdir, allow_change=False)
  os.makedirs(os.path.join(workdir, 'checkpoints', '2'))  # It wrote a step.
  path = os.path.join(workdir, 'config.json')
  with open(path) as f:
    saved = json.load(f)
  del saved['bn_moving_average']
  with open(path, 'w') as f:
    json.dump(saved, f)
  train.check_config(tiny_config(bn_moving_average='plain'), workdir, allow_change=False)
  with pytest.raises(train.ConfigMismatchError,
                     match="bn_moving_average: 'plain' -> 'zero_debiased'"):
    train.check_config(tiny_config(), workdir, allow_change=False)


def test_bad_config_or_data_writes_nothing(tmp_path):
  workdir = str(tmp_path / 'run')
  bad = tiny_config(num_train_steps=2)
  bad.optimizer.name = 'foo'
  with pytest.raises(train.ConfigError, match="optimizer.name='foo' is unknown"):
    train.train_and_evaluate(bad, workdir)
  assert not os.path.exists(workdir)
  # Fails while loading data, after the lock was taken: still nothing left.
  with pytest.raises(train.ConfigError, match='val_fraction'):
    train.train_and_evaluate(tiny_config(**{'dataset.val_fraction': 0.0}), workdir)
  assert not os.path.exists(workdir)


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_history_without_checkpoints_needs_restart_flag(two_steps, tmp_path, capsys):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  old = _metrics(workdir)
  with pytest.raises(train.NoCheckpointError) as e:
    train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  msg = str(e.value)
  assert '\n' not in msg
  assert msg.startswith(f'{workdir} holds a previous run (metrics.jsonl with '
                        f'{len(old)} records up to step 2, ')
  assert f'{workdir}/checkpoints is missing' in msg and '--restart_from_scratch' in msg
  assert _metrics(workdir) == old  # Nothing appended, nothing moved.
  summary = train.train_and_evaluate(tiny_config(num_train_steps=2), workdir,
                                     restart_from_scratch=True)
  assert summary['final_step'] == 2
  assert 'Training from step 0 (--restart_from_scratch)' in capsys.readouterr().out
  [moved] = glob.glob(os.path.join(workdir, 'previous_runs', '*', 'metrics.jsonl'))
  with open(moved) as f:
    assert [json.loads(line) for line in f] == old
  assert [r['step'] for r in _metrics(workdir) if r['kind'] == 'train'] == [1, 2]


@pytest.mark.parametrize('damage', ['empty', 'partial', 'deleted'])
def test_damaged_best_never_blocks_resume(two_steps, tmp_path, damage, capsys):
  workdir = str(tmp_path / 'run')
  shutil.copytree(two_steps, workdir)
  best = os.path.join(workdir, 'best')
  shutil.rmtree(best)
  if damage != 'deleted':
    os.makedirs(best)
  if damage == 'partial':  # What a run killed while saving leaves.
    os.makedirs(os.path.join(best, '2.orbax-checkpoint-tmp-1234', 'params'))
  summary = train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  assert summary['selected_step'] == 2
  assert 'holds no checkpoint of the selected step 2' in capsys.readouterr().out
  assert os.path.exists(os.path.join(workdir, 'results', 'summary.json'))
  assert sorted(os.listdir(best)) == ['2']


def test_second_training_is_refused_and_first_unharmed(tmp_path):
  """Fault injection: two launch.main on one workdir at the same time."""
  workdir = str(tmp_path / 'run')
  args = [sys.executable, '-m', 'launch.main', f'--workdir={workdir}'
          ] + config_flags_for(num_train_steps=4)
  first = subprocess.Popen(args, cwd=REPO, env=python_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  lock = os.path.join(workdir, 'run.lock')
  try:
    deadline = time.time() + 300
    while not os.path.exists(lock):
      assert first.poll() is None and time.time() < deadline, first.communicate()
      time.sleep(0.2)
    first.send_signal(signal.SIGSTOP)  # Keep it mid-run while the second starts.
    try:
      second = run_python(args[1:], timeout=300)
    finally:
      first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
  finally:
    if first.poll() is None:
      first.kill()
  assert second.returncode == 1 and 'Traceback' not in second.stderr, second.stderr[-3000:]
  last = second.stderr.strip().splitlines()[-1]
  assert last.startswith(f'ERROR: {workdir} is in use by another run (host '
                         f'{socket.gethostname()}, pid {first.pid}, since '), last
  assert first.returncode == 0, err[-3000:]
  assert 'Training done (4 steps' in out
  with open(os.path.join(workdir, 'results', 'summary.json')) as f:
    assert json.load(f)['final_step'] == 4
  assert [r['step'] for r in _metrics(workdir) if r['kind'] == 'train'] == [1, 2, 3, 4]
  assert not os.path.exists(lock)
