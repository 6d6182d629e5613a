"""Cluster scripts: bash syntax, and the commands they build parse as flags."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.train_helpers import REPO

SLURM = os.path.join(REPO, 'launch', 'slurm', 'train.sbatch')
TPU = os.path.join(REPO, 'launch', 'tpu', 'train.sh')
EXTRA = '--config.batch_size=128 --config.dtype=bfloat16 --config.protocol=paper'


@pytest.mark.parametrize('script', [SLURM, TPU])
def test_bash_syntax(script):
  subprocess.run(['bash', '-n', script], check=True)


def _dry_run(script, **env):
  full = dict(os.environ, DRY_RUN='1', CONFIG='configs/vis_nir.py',
              WORKDIR='/shared/runs/x', EXTRA_FLAGS=EXTRA, **env)
  out = subprocess.run(['bash', script], env=full, capture_output=True, text=True,
                       check=True).stdout
  return out


def _launch_args(command: str):
  argv = shlex.split(command)
  i = argv.index('launch.main')
  return argv[i + 1:]


PARSE = r"""
import json, sys
from absl import flags
import launch.main  # Defines the flags exactly as the launcher does.
flags.FLAGS(sys.argv)
c = flags.FLAGS.config
print(json.dumps({'workdir': flags.FLAGS.workdir, 'batch_size': c.batch_size,
                  'dtype': c.dtype, 'protocol': c.protocol,
                  'dataset': c.dataset.name}))
"""


def _parse_as_main_flags(args):
  """Parses args with launch.main's flag definitions in a fresh process."""
  proc = subprocess.run([sys.executable, '-c', PARSE] + args, cwd=REPO,
                        capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stderr[-2000:]
  parsed = json.loads(proc.stdout.strip().splitlines()[-1])
  return parsed, parsed['workdir']


@pytest.mark.parametrize('mode', ['per_node', 'per_gpu'])
def test_slurm_command_parses(mode, monkeypatch):
  monkeypatch.chdir(REPO)
  out = _dry_run(SLURM, MODE=mode)
  assert out.startswith('srun ')
  assert ('--gpus-per-task=1' in out) == (mode == 'per_gpu')
  config, workdir = _parse_as_main_flags(_launch_args(out))
  assert workdir == '/shared/runs/x'
  assert config['batch_size'] == 128 and config['dtype'] == 'bfloat16'
  assert config['protocol'] == 'paper' and config['dataset'] == 'vis_nir'


def _fake_slurm(tmp_path, srun_status):
  """PATH with an `srun` exiting `srun_status` and an `scontrol` logging its args."""
  log = tmp_path / 'scontrol.log'
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name, body in (('srun', f'exit {srun_status}'),
                     ('scontrol', f'echo "$@" >> {log}')):
    (bin_dir / name).write_text(f'#!/bin/bash\n{body}\n')
    (bin_dir / name).chmod(0o755)
  return f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', log


@pytest.mark.parametrize('status,requeued,exit_status', [(75, True, 0), (0, False, 0),
                                                         (1, False, 1)])
def test_slurm_requeues_a_preempted_run_only(tmp_path, status, requeued, exit_status):
  path, log = _fake_slurm(tmp_path, status)
  env = dict(os.environ, PATH=path, SLURM_JOB_ID='4242', REPO=REPO,
             CONFIG='configs/test.py', WORKDIR=str(tmp_path / 'w'))
  proc = subprocess.run(['bash', SLURM], env=env, capture_output=True, text=True)
  assert proc.returncode == exit_status, proc.stderr
  assert (log.read_text() if log.exists() else '') == ('requeue 4242\n' if requeued else '')
  with open(SLURM) as f:
    head = f.read()
  assert '#SBATCH --signal=TERM@120' in head and '#SBATCH --requeue' in head


def test_tpu_command_parses(monkeypatch):
  monkeypatch.chdir(REPO)
  out = _dry_run(TPU, TPU_NAME='pod', ZONE='us-central2-b')
  assert '--worker=all' in out
  remote = [l for l in out.splitlines() if l.startswith('REMOTE: ')][0]
  config, workdir = _parse_as_main_flags(_launch_args(remote[len('REMOTE: '):]))
  assert workdir == '/shared/runs/x' and config['batch_size'] == 128


def test_bad_slurm_mode_fails():
  with pytest.raises(subprocess.CalledProcessError):
    _dry_run(SLURM, MODE='bogus')
