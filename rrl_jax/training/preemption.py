"""Preemption: SIGTERM / SIGINT stop a run cleanly at a step boundary.

Clusters (Slurm, TPU VMs, Kubernetes) send SIGTERM some time before they kill
a job. While `StopSignals` is active the signal only sets a flag; the training
loop finishes its step, saves a checkpoint and raises `Preempted`, which
launch/main.py turns into one line and exit code PREEMPTED_EXIT_CODE. The same
command resumes exactly (README, "Preemption").

Multi-host: a signal may reach the processes at different steps, so they agree
through a one-integer all-gather every SYNC_EVERY steps (the stop step is the
first agreed step at which any process saw a signal).
"""
import signal
import threading
from typing import Optional

import jax
from jax.experimental import multihost_utils
import numpy as np

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry".
PREEMPTED_EXIT_CODE = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Steps between the processes' agreements (multi-host only). One agreement took
# 2-6 ms (median; 2 CPU processes on one machine, gloo; tests/test_preemption.py):
# every 10 steps costs 0.2-0.6 ms per step on average and stops at most 9 steps
# after the signal.
SYNC_EVERY = 10


class Preempted(Exception):
  """The run stopped on a signal after saving a checkpoint at `step`."""

  def __init__(self, step: int, signum: int):
    self.step, self.signum = int(step), int(signum)
    super().__init__(f'preempted at step {self.step}, checkpoint saved; rerun '
                     'the same command to resume')


class StopSignals:
  """Context manager: SIGTERM/SIGINT set a flag instead of stopping the process.

  A second signal of the same run restores the previous handlers and re-raises
  it at once (a user pressing Ctrl-C twice means it). Outside the main thread
  (no signal handlers possible) it does nothing.
  """

  def __init__(self, sync_every: int = SYNC_EVERY):
    self.sync_every = max(1, int(sync_every))
    self.signum: Optional[int] = None  # The first signal this process saw.
    self.stopped = False  # should_stop said yes (on every process alike).
    self._previous = {}

  def install(self) -> 'StopSignals':
    if threading.current_thread() is threading.main_thread():
      for s in SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def restore(self) -> None:
    """Puts the previous handlers back."""
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def __enter__(self):
    return self.install()

  def __exit__(self, *exc):
    self.restore()
    return False

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None:  # The second one: stop now.
      self.restore()
      signal.raise_signal(signum)
      return
    self.signum = signum

  def should_stop(self, step: int, force: bool = False) -> bool:
    """Whether every process stops after `step` (the same answer on each).

    Multi-host, the processes compare flags at steps divisible by sync_every
    (or when `force`): every process must call this at the same steps.
    """
    if jax.process_count() == 1:
      self.stopped = self.signum is not None
    elif force or step % self.sync_every == 0:
      seen = multihost_utils.process_allgather(
          np.int32(0 if self.signum is None else self.signum))
      if self.signum is None and np.any(seen):
        self.signum = int(np.max(seen))
      self.stopped = bool(np.any(seen))
    return self.stopped
