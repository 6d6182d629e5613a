"""Stop signals (rrl_jax.training.preemption); the whole run: test_resume.py."""
import os
import signal
import subprocess
import sys

import pytest

from rrl_jax.training import preemption
from tests.test_data_parallel import _coordinator_port
from tests.train_helpers import REPO, cpu_devices_env, python_env


def test_first_signal_only_asks_the_second_stops_at_once():
  previous = signal.getsignal(signal.SIGINT)
  with preemption.StopSignals() as stop:
    assert not stop.should_stop(0)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: no KeyboardInterrupt yet.
    assert stop.should_stop(1) and stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again: now.
  assert signal.getsignal(signal.SIGINT) is previous


def test_handlers_are_restored_after_the_loop():
  before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
  with preemption.StopSignals():
    assert all(signal.getsignal(s) != before[s] for s in preemption.SIGNALS)
  assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before


AGREE = r'''
import os, signal, sys, time
import numpy as np
from rrl_jax import distributed
pid, port = int(sys.argv[1]), sys.argv[2]
distributed.initialize(f'127.0.0.1:{port}', 2, pid, cpu_collectives='gloo')
from rrl_jax.training import preemption
times = []
with preemption.StopSignals(sync_every=5) as stop:
  step = 0
  while True:
    t0 = time.perf_counter()
    done = stop.should_stop(step)
    if step % 5 == 0:  # The steps with an agreement.
      times.append(time.perf_counter() - t0)
    if done:
      break
    step += 1
    if pid == 1 and step == 7:  # Only process 1 is signalled.
      os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)
print('STOP', pid, step, stop.signum, f'{1e3 * np.median(times[1:]):.3f}', flush=True)
'''


def test_processes_agree_on_the_stop_step(tmp_path):
  """Process 1 alone is signalled at step 7; both stop after step 10."""
  port = _coordinator_port()
  env = python_env(cpu_devices_env())
  procs, outs = [], [tmp_path / f'p{i}.out' for i in range(2)]
  for i, out in enumerate(outs):
    with open(out, 'w') as f:
      procs.append(subprocess.Popen([sys.executable, '-c', AGREE, str(i), str(port)],
                                    cwd=REPO, env=env, stdout=f,
                                    stderr=subprocess.STDOUT))
  try:
    for p in procs:
      p.wait(timeout=300)
  finally:
    for p in procs:
      p.kill()
  lines = [[l for l in out.read_text().splitlines() if l.startswith('STOP')]
           for out in outs]
  assert all(p.returncode == 0 and l for p, l in zip(procs, lines)), [
      out.read_text()[-2000:] for out in outs]
  stops = [l[0].split() for l in lines]
  assert [s[2] for s in stops] == ['10', '10']  # The next agreement, on both.
  assert [s[3] for s in stops] == [str(int(signal.SIGTERM))] * 2
  print('median agreement time (ms) per process:', [s[4] for s in stops])
