"""Run directories (rrl_jax.training.workdir): the run lock, one run per workdir."""
import json
import os
import socket
import subprocess
import sys

import pytest

from rrl_jax.training import workdir as wd
from rrl_jax.errors import WorkdirError


def _write_lock(workdir, **holder):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, wd.LOCK_FILE), 'w') as f:
    json.dump(holder, f)


def test_lock_is_taken_and_released(tmp_path):
  workdir = str(tmp_path / 'run')
  with wd.run_lock(workdir):
    with open(os.path.join(workdir, wd.LOCK_FILE)) as f:
      holder = json.load(f)
    assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
    with pytest.raises(WorkdirError) as e:  # A second taker is refused.
      wd.RunLock(workdir).acquire()
    assert f'pid {os.getpid()}' in str(e.value) and 'in use by another run' in str(e.value)
    open(os.path.join(workdir, 'kept'), 'w').close()
  assert os.listdir(workdir) == ['kept']


def test_lock_released_on_exception_and_empty_new_dir_removed(tmp_path):
  workdir = str(tmp_path / 'new')
  with pytest.raises(RuntimeError):
    with wd.run_lock(workdir):
      raise RuntimeError('boom')
  assert not os.path.exists(workdir)  # A run that never started leaves nothing.


def test_live_holder_is_named(tmp_path):
  workdir = str(tmp_path / 'run')
  sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    _write_lock(workdir, host=socket.gethostname(), pid=sleeper.pid,
                since='2026-01-01 00:00:00 UTC')
    with pytest.raises(WorkdirError) as e:
      wd.RunLock(workdir).acquire()
  finally:
    sleeper.kill()
    sleeper.wait()
  msg = str(e.value)
  assert '\n' not in msg
  assert (f'host {socket.gethostname()}, pid {sleeper.pid}, since 2026-01-01 '
          '00:00:00 UTC') in msg
  assert os.path.exists(os.path.join(workdir, wd.LOCK_FILE))  # Untouched.


def test_other_hosts_lock_is_respected(tmp_path):
  workdir = str(tmp_path / 'run')
  _write_lock(workdir, host='elsewhere', pid=os.getpid(), since='then')
  with pytest.raises(WorkdirError, match='host elsewhere'):
    wd.RunLock(workdir).acquire()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
  workdir = str(tmp_path / 'run')
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  _write_lock(workdir, host=socket.gethostname(), pid=dead.pid, since='then')
  lock = wd.RunLock(workdir)
  lock.acquire()
  assert 'removing stale lock' in capsys.readouterr().out
  lock.release()
  assert not os.path.exists(os.path.join(workdir, wd.LOCK_FILE))


def test_reused_pid_is_stale(tmp_path):
  workdir = str(tmp_path / 'run')  # Our pid, but another process start time.
  _write_lock(workdir, host=socket.gethostname(), pid=os.getpid(), start='1', since='x')
  lock = wd.RunLock(workdir)
  lock.acquire()
  lock.release()


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')
def test_read_only_parent_is_one_line(tmp_path):
  parent = tmp_path / 'ro'
  parent.mkdir()
  parent.chmod(0o500)
  try:
    with pytest.raises(WorkdirError, match='cannot write to --workdir'):
      wd.RunLock(str(parent / 'run')).acquire()
  finally:
    parent.chmod(0o700)


def test_unwritable_workdir_is_one_line(tmp_path):
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(WorkdirError) as e:
    wd.RunLock(str(tmp_path / 'a_file' / 'run')).acquire()
  assert str(e.value).startswith(f'cannot write to --workdir {tmp_path}/a_file/run (')


def test_a_run_without_checkpoints_is_no_config_change(tmp_path):
  """Its config.json came from an attempt that never wrote a step (e.g. OOM)."""
  from rrl_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from tests.train_helpers import tiny_config  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'run')
  wd.save_config(tiny_config(batch_size=8), path)
  wd.check_config(tiny_config(batch_size=4), path, allow_change=False)
  os.makedirs(os.path.join(path, 'checkpoints', '2'))
  with pytest.raises(UserError, match='batch_size: 8 -> 4'):
    wd.check_config(tiny_config(batch_size=4), path, allow_change=False)
