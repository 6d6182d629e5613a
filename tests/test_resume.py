"""Resume equality: N steps + N more == 2N uninterrupted (also after SIGKILL)."""
import gc
import os
import shutil
import time

import numpy as np
import pytest

from rrl_jax.training import train
from tests.train_helpers import config_flags_for, max_abs_diff, params_of
from tests.train_helpers import run_python, tiny_config
from rrl_jax.training.metric_writers import read_metrics
from rrl_jax.training.preemption import PREEMPTED_EXIT_CODE

pytestmark = pytest.mark.heavy(seconds=330)

N = 4


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory):
  """The workdir of 2N uninterrupted steps."""
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  train.train_and_evaluate(tiny_config(num_train_steps=2 * N), workdir)
  return workdir


@pytest.fixture(scope='module')
def reference(reference_run):
  return params_of(reference_run)


@pytest.fixture(scope='module')
def first_half(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('first_half'))
  train.train_and_evaluate(tiny_config(num_train_steps=N), workdir)
  return workdir


def test_resume_equals_uninterrupted(reference, first_half, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(first_half, workdir)
  summary = train.train_and_evaluate(tiny_config(num_train_steps=2 * N), workdir)
  assert summary['final_step'] == 2 * N
  assert max_abs_diff(params_of(workdir), reference) == 0.0


def test_corrupt_latest_checkpoint_falls_back(first_half, tmp_path, capsys):
  workdir = str(tmp_path / 'run')
  shutil.copytree(first_half, workdir)
  expected = params_of(first_half)  # Step N, uninterrupted.
  latest = os.path.join(workdir, 'checkpoints', str(N))
  for root, _, files in os.walk(os.path.join(latest, 'params')):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  train.train_and_evaluate(tiny_config(num_train_steps=N), workdir)
  out = capsys.readouterr().out
  assert 'unreadable' in out and f'checkpoints/{N}' in out
  assert f'Resumed from checkpoint step {N // 2}' in out
  assert os.listdir(os.path.join(workdir, 'unreadable_checkpoints'))
  assert max_abs_diff(params_of(workdir), expected) == 0.0


def test_killed_subprocess_resumes_exactly(reference, tmp_path):
  workdir = str(tmp_path / 'killed')
  flags = [f'--workdir={workdir}'] + config_flags_for(num_train_steps=2 * N)
  args = ['-m', 'launch.main'] + flags
  killed = run_python(['-m', 'tests.kill_at_step', f'--kill_after_step={N + 1}'] + flags)
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert not os.path.exists(os.path.join(workdir, 'results'))
  resumed = run_python(args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resumed from checkpoint step' in resumed.stdout
  assert max_abs_diff(params_of(workdir), reference) == 0.0


def test_all_checkpoints_corrupt_is_said_plainly(first_half, tmp_path, capfd):
  workdir = str(tmp_path / 'run')
  shutil.copytree(first_half, workdir)
  # Array data only (metadata intact): Orbax fails mid-restore, with reads in
  # flight (once tens of thousands of "Event loop is closed" lines).
  for root, _, files in os.walk(os.path.join(workdir, 'checkpoints')):
    for name in files:
      if os.path.basename(root) == 'd':
        with open(os.path.join(root, name), 'wb') as f:
          f.write(b'garbage')
  with pytest.raises(train.NoCheckpointError) as e:
    train.train_and_evaluate(tiny_config(num_train_steps=N), workdir)
  time.sleep(2)  # Let the abandoned reads complete and be collected.
  gc.collect()
  out, err = capfd.readouterr()
  reports = [l for l in (out + err).splitlines() if 'unreadable' in l]
  assert len(reports) == 2, out + err  # One line per checkpoint, nothing else.
  ckpt = os.path.join(workdir, 'checkpoints')
  assert reports[0].startswith(f'WARNING: checkpoint {ckpt}/{N} is unreadable (')
  assert reports[0].endswith(f'; trying step {N // 2}.')
  assert reports[1].startswith(f'WARNING: checkpoint {ckpt}/{N // 2} is unreadable (')
  assert reports[1].endswith('; no earlier checkpoint is left.')
  assert 'Event loop' not in out + err and 'Traceback' not in out + err
  assert f'all 2 checkpoint(s) in {ckpt} were unreadable' in str(e.value)
  assert len(os.listdir(os.path.join(workdir, 'unreadable_checkpoints'))) == 2


def _train_losses(workdir):
  return {r['step']: r['total'] for r in read_metrics(workdir, 'train')}


@pytest.mark.parametrize('signal_name', ['SIGTERM'])
def test_preempted_subprocess_saves_and_resumes_exactly(reference_run, reference,
                                                        tmp_path, signal_name):
  """A cluster's preemption: the signal arrives during step N + 2."""
  workdir = str(tmp_path / 'preempted')
  # Periodic checkpoints at 2N only: the one at N + 2 is the preemption's.
  flags = [f'--workdir={workdir}'] + config_flags_for(
      num_train_steps=2 * N, checkpoint_every=2 * N)
  stopped = run_python(['-m', 'tests.kill_at_step', f'--kill_after_step={N + 1}',
                        f'--signal={signal_name}'] + flags)
  assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr[-3000:]
  assert stopped.stdout.splitlines()[-1] == (
      f'preempted at step {N + 2}, checkpoint saved; rerun the same command to resume')
  assert 'Traceback' not in stopped.stderr
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [str(N + 2)]
  assert not os.path.exists(os.path.join(workdir, 'run.lock'))
  assert not os.path.exists(os.path.join(workdir, 'results'))
  resumed = run_python(['-m', 'launch.main'] + flags)  # The requeued command.
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'Resumed from checkpoint step {N + 2}' in resumed.stdout
  assert max_abs_diff(params_of(workdir), reference) == 0.0
  assert _train_losses(workdir) == _train_losses(reference_run)
