"""Faults during a run (rrl_jax.training.train): out of memory, full disk.

Each ends in one line naming what to do, nothing a user made is lost, and the
same command (or the corrected one) then runs.
"""
import errno
import os
import subprocess

import jax
import pytest

from rrl_jax.errors import OutOfMemoryError
from rrl_jax.training import checkpoints
from rrl_jax.training import train
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.heavy(seconds=200)


def _fails_with_out_of_memory(make_train_step):
  def make(*args, **kwargs):
    def step(*unused):
      raise jax.errors.JaxRuntimeError(
          'RESOURCE_EXHAUSTED: Out of memory while trying to allocate '
          '158913789952 bytes.')
    return step
  return make


def test_out_of_memory_is_one_line_and_the_smaller_batch_just_runs(
    tmp_path, monkeypatch, capsys):
  # Spaces and non-ASCII characters in the path, as users' directories have.
  workdir = str(tmp_path / 'runs dir é' / 'ré sumé')
  with monkeypatch.context() as m:
    m.setattr(train, 'make_train_step', _fails_with_out_of_memory(train.make_train_step))
    with pytest.raises(OutOfMemoryError) as e:
      train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  assert str(e.value) == (
      'out of device memory in train step 1 with config.batch_size=8 (1 device(s); '
      'one allocation asked for 148.0 GiB): lower config.batch_size (e.g. '
      '--config.batch_size=2).')
  assert not os.path.exists(os.path.join(workdir, 'run.lock'))
  capsys.readouterr()
  # The corrected command: no step was ever written, so no "config change".
  summary = train.train_and_evaluate(tiny_config(num_train_steps=2, batch_size=4),
                                     workdir)
  assert summary['final_step'] == 2
  out = capsys.readouterr().out
  assert 'Training from step 0 (the previous attempt stopped before its first ' \
         'checkpoint' in out
  assert os.path.isfile(os.path.join(workdir, 'results', 'results.md'))


def test_disk_full_while_writing_results_keeps_the_run(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')

  def full(outdir, *args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device',
                  os.path.join(outdir, 'roc.png'))

  with monkeypatch.context() as m:
    m.setattr(train.reports, 'write_reports', full)
    with pytest.raises(checkpoints.DiskFullError) as e:
      train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  msg = str(e.value)
  assert '\n' not in msg
  assert msg.startswith(f'disk full while writing {workdir}/results/roc.png (free: ')
  assert msg.endswith(f'Last good checkpoint: {workdir}/checkpoints/2. Free space '
                      'and rerun the same command to resume.')
  assert not os.path.exists(os.path.join(workdir, 'run.lock'))
  summary = train.train_and_evaluate(tiny_config(num_train_steps=2), workdir)
  assert summary['final_step'] == 2
  assert os.path.isfile(os.path.join(workdir, 'results', 'results.md'))


@pytest.fixture
def small_tmpfs(tmp_path):
  """An 8 MiB tmpfs (root only: `mount -t tmpfs`)."""
  mnt = str(tmp_path / 'tmpfs')
  os.makedirs(mnt)
  if os.geteuid() != 0 or subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt],
      capture_output=True).returncode:
    pytest.skip('needs root to mount a small tmpfs')
  yield mnt
  subprocess.run(['umount', mnt], check=True)


def test_disk_full_while_checkpointing_stops_there(small_tmpfs, capfd):
  workdir = os.path.join(small_tmpfs, 'run')
  filler = os.path.join(small_tmpfs, 'filler')
  with open(filler, 'wb') as f:  # Room for best/ and one checkpoint (~3.8 MiB).
    f.write(b'\0' * (3300 << 10))
  with pytest.raises(checkpoints.DiskFullError) as e:
    train.train_and_evaluate(tiny_config(num_train_steps=4), workdir)
  ckpt = os.path.join(workdir, 'checkpoints')
  msg = str(e.value)
  assert msg.startswith(f'disk full while saving checkpoint step 4 in {ckpt} (free: ')
  assert msg.endswith(f'; training stopped at step 4. Last good checkpoint: {ckpt}/2. '
                      f'Free space on {workdir} and rerun the same command to resume.')
  out, err = capfd.readouterr()
  assert 'Traceback' not in out + err and 'No space left' not in out + err
  assert sorted(os.listdir(ckpt)) == ['2']  # The partial step 4 is gone.
  assert not os.path.exists(os.path.join(workdir, 'run.lock'))
  os.remove(filler)
  summary = train.train_and_evaluate(tiny_config(num_train_steps=4), workdir)
  assert summary['final_step'] == 4
  assert 'Resumed from checkpoint step 2' in capfd.readouterr().out
