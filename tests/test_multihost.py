"""2 processes on 127.0.0.1 (CPU collectives) == one process, same global batches."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.train_helpers import REPO, cpu_devices_env, max_abs_diff, run_python

pytestmark = pytest.mark.heavy(seconds=175)

SCRIPT = r'''
import json, sys
import numpy as np
import jax
from rrl_jax import distributed
pid, nproc, port, workdir, out = sys.argv[1:6]
if int(nproc) > 1:
  distributed.initialize(f'127.0.0.1:{port}', int(nproc), int(pid), cpu_collectives='gloo')
from rrl_jax.training import train
from tests.train_helpers import tiny_config
c = tiny_config(num_train_steps=3, checkpoint_every=3, eval_every=0)
c.optimizer.name = 'sgd'
c.optimizer.learning_rate = 0.05
c.optimizer.momentum = 0.0
# Each process dumps the parameters it holds in memory after training.
v = train.train_and_evaluate(c, workdir, return_variables=True)['variables']
flat = {jax.tree_util.keystr(k): np.asarray(x) for k, x in
        jax.tree_util.tree_leaves_with_path(v)}
np.savez(out, **flat)
print('DONE', jax.process_index(), jax.process_count(), jax.device_count())
'''


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _load(path):
  with np.load(path) as z:
    return {k: z[k] for k in sorted(z.files)}


def test_two_processes_equal_one(tmp_path):
  port = _free_port()
  env = dict(os.environ, **cpu_devices_env(),
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  workdir = str(tmp_path / 'two')
  procs = [subprocess.Popen(
      [sys.executable, '-c', SCRIPT, str(i), '2', str(port), workdir,
       str(tmp_path / f'p{i}.npz')], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, '\n'.join(f'--- process {i}:\n' + e[-3000:]
                                        for i, (_, e) in enumerate(outs))
    assert 'DONE' in out and ' 2 2' in out, out
  single = run_python(['-c', SCRIPT, '0', '1', '0', str(tmp_path / 'one'),
                       str(tmp_path / 'single.npz')], env=cpu_devices_env())
  assert single.returncode == 0, single.stderr[-4000:]
  p0, p1 = _load(tmp_path / 'p0.npz'), _load(tmp_path / 'p1.npz')
  ref = _load(tmp_path / 'single.npz')
  assert max_abs_diff(p0, p1) == 0.0
  # Equal to the single-process run up to the order of cross-process sums.
  assert max_abs_diff(p0, ref) < 1e-5
