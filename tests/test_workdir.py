"""Run directories: config validation, the run lock (one run per workdir)."""
import json
import os
import socket
import subprocess
import sys

import pytest

from rrl_jax.training import config_validation
from rrl_jax.training import workdir as wd
from rrl_jax.errors import ConfigError, WorkdirError
from tests.train_helpers import tiny_config


def _problem(device_count=1, **overrides):
  problems = config_validation.config_problems(tiny_config(**overrides), device_count)
  assert len(problems) == 1, problems
  return problems[0]


def test_shipped_test_config_is_valid():
  assert config_validation.config_problems(tiny_config(), device_count=8) == []


@pytest.mark.parametrize('field,value,valid', [
    ('dataset.name', 'nope', 'synthetic'),
    ('optimizer.name', 'foo', 'keras_nadam'),
    ('optimizer.schedule', 'linear', 'warmup_cosine'),
    ('recon_loss', 'l1', 'perceptual'),
    ('augment.order', 'random', 'listed'),
    ('data_mode', 'shuffle', 'official'),
    ('protocol', 'best', 'paper'),
    ('dtype', 'float16', 'bfloat16'),
    ('model_name', 'resnet', 'rrl_net'),
])
def test_unknown_names_list_the_valid_ones(field, value, valid):
  msg = _problem(**{field: value})
  assert msg.startswith(f'config.{field}={value!r} is unknown; valid: ')
  assert valid in msg


@pytest.mark.parametrize('field,value,expect', [
    ('batch_size', -3, 'config.batch_size=-3 must be an integer > 0'),
    ('batch_size', 0, 'config.batch_size=0 must be an integer > 0'),
    ('eval_batch_size', 0, 'config.eval_batch_size=0 must be an integer > 0'),
    ('optimizer.learning_rate', 0.0, 'config.optimizer.learning_rate=0.0 must be'),
    ('optimizer.learning_rate', float('nan'), 'learning_rate=nan must be'),
    ('log_every', 0, 'config.log_every=0 must be an integer > 0'),
    ('checkpoint_every', -1, 'config.checkpoint_every=-1 must be'),
    ('keep', 0, 'config.keep=0 must be an integer >= 1'),
    ('model.widths', (4, 0, 8, 8, 8), 'config.model.widths=(4, 0, 8, 8, 8) must be'),
    ('model.head_hidden', (), 'config.model.head_hidden=() must be'),
    ('model.stage_heads', (3, 4), 'including the last one (5)'),
    ('num_train_steps', 0, 'set num_train_steps > 0 or num_epochs > 0'),
])
def test_bad_numbers_are_named(field, value, expect):
  overrides = {field: value}
  if field == 'num_train_steps':
    overrides['num_epochs'] = 0
  assert expect in _problem(**overrides)


def test_batch_must_divide_over_the_devices():
  assert _problem(device_count=2, batch_size=7) == (
      'config.batch_size=7 is not divisible by the 2 devices; use a multiple of 2')
  assert config_validation.config_problems(tiny_config(batch_size=8), device_count=2) == []


def test_validate_config_is_one_line():
  c = tiny_config(batch_size=0)
  c.optimizer.name = 'foo'
  with pytest.raises(ConfigError) as e:
    config_validation.validate_config(c, device_count=1)
  assert '\n' not in str(e.value)
  assert 'batch_size=0' in str(e.value) and "optimizer.name='foo'" in str(e.value)


# ----------------------------------------------------------------------------
# The lock.


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


def test_builder_kwargs_checked_against_the_dataset():
  assert _problem(**{'dataset.name': 'vis_nir'}) == (
      "config.dataset.builder_kwargs has ['num_pairs'], which dataset 'vis_nir' "
      'does not take; valid: splits')
  c = tiny_config(**{'dataset.name': 'synthetic'})
  c.dataset.builder_kwargs = {'num_train': 8}
  assert config_validation.config_problems(c, 1) == []
