"""Data parallelism gives the one-device result on the same global batches.

4 fake CPU devices in one process, and 2 processes on 127.0.0.1 (CPU
collectives), against one in-process run on one device: SGD, so that float32
summation order is all that differs (an Adam-like update turns rounding-level
gradients into steps of the learning rate), augmentation on.
"""
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from rrl_jax.training import train
from tests.train_helpers import REPO, cpu_devices_env, max_abs_diff, python_env
from tests.train_helpers import run_python, tiny_config

pytestmark = pytest.mark.heavy(seconds=250)

# Trains sgd_config() on every device of this process (with nproc > 1, as one of
# several processes) and saves the variables it holds in memory.
SCRIPT = r'''
import sys
import jax
from rrl_jax import distributed
pid, nproc, port, workdir, out = sys.argv[1:6]
if int(nproc) > 1:
  distributed.initialize(f'127.0.0.1:{port}', int(nproc), int(pid), cpu_collectives='gloo')
from rrl_jax.training import train
from tests.test_data_parallel import save_variables, sgd_config
save_variables(train.train_and_evaluate(sgd_config(), workdir, return_variables=True), out)
print('DONE', jax.process_index(), jax.process_count(), jax.device_count())
'''


def sgd_config():
  c = tiny_config(num_train_steps=3, checkpoint_every=3, eval_every=0)
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.05
  c.optimizer.momentum = 0.0
  assert c.augment.enabled
  return c


def save_variables(summary, path):
  flat = {jax.tree_util.keystr(k): np.asarray(x)
          for k, x in jax.tree_util.tree_leaves_with_path(summary['variables'])}
  np.savez(path, **flat)


def _load(path):
  with np.load(path) as z:
    return {k: z[k] for k in sorted(z.files)}


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def one_device(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('one_device')
  assert jax.device_count() == 1
  save_variables(train.train_and_evaluate(sgd_config(), str(tmp / 'run'),
                                          return_variables=True), tmp / 'one.npz')
  return _load(tmp / 'one.npz')


def test_four_devices_equal_one(one_device, tmp_path):
  out = tmp_path / 'four.npz'
  proc = run_python(['-c', SCRIPT, '0', '1', '0', str(tmp_path / 'run'), str(out)],
                    env=cpu_devices_env(4))
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert 'DONE 0 1 4' in proc.stdout, proc.stdout
  diff = max_abs_diff(_load(out), one_device)
  print('4 devices vs 1, max |difference|:', diff)
  assert diff < 1e-5


def test_two_processes_equal_one(one_device, tmp_path):
  port = _free_port()
  env = python_env(cpu_devices_env())
  procs = [subprocess.Popen(
      [sys.executable, '-c', SCRIPT, str(i), '2', str(port), str(tmp_path / 'run'),
       str(tmp_path / f'p{i}.npz')], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (out, _) in zip(procs, outs):
    assert p.returncode == 0, '\n'.join(f'--- process {i}:\n' + e[-3000:]
                                        for i, (_, e) in enumerate(outs))
    assert 'DONE' in out and ' 2 2' in out, out
  p0, p1 = _load(tmp_path / 'p0.npz'), _load(tmp_path / 'p1.npz')
  assert max_abs_diff(p0, p1) == 0.0
  # Equal to the one-device run up to the order of cross-process sums.
  diff = max_abs_diff(p0, one_device)
  print('2 processes vs 1, max |difference|:', diff)
  assert diff < 1e-5
