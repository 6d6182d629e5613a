"""Run logging: JSONL metrics, TensorBoard events (tensorboardX), tqdm bar.

Only process 0 writes; other processes get a writer that does nothing.
"""
import json
import math
import os
import time
from typing import Any, Dict, Optional

import numpy as np

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def _scalar(v: Any) -> Any:
  v = np.asarray(v).item() if hasattr(v, 'shape') or isinstance(v, np.generic) else v
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/Inf; keep them readable.
  return v


class MetricWriter:
  """Appends {'step', 'kind', ...} records to workdir/metrics.jsonl and TB."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    self._f = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, METRICS_FILE)
    repair_torn_tail(path)
    self._f = open(path, 'a')
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))
    except ImportError:  # TensorBoard files are optional; JSONL is not.
      self._tb = None

  def write(self, step: int, scalars: Dict[str, Any], kind: str = 'train') -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'kind': kind}
    record.update({k: _scalar(v) for k, v in scalars.items()})
    self._f.write(json.dumps(record) + '\n')
    self._f.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        v = float(np.asarray(v))
        self._tb.add_scalar(f'{kind}/{k}', v, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._f is not None:
      self._f.close()
      self._f = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def repair_torn_tail(path: str) -> None:
  """Completes or drops a final line a kill cut short, with one warning.

  Records are written whole and flushed, so a line without its newline is the
  record being written when the process died: kept if it is complete JSON
  (only the newline is missing), dropped otherwise.
  """
  if not os.path.isfile(path):
    return
  with open(path, 'rb') as f:
    data = f.read()
  start = data.rfind(b'\n') + 1
  tail = data[start:]
  if not tail:
    return
  try:
    json.loads(tail)
  except ValueError:
    with open(path, 'r+b') as f:
      f.truncate(start)
    print(f'WARNING: {path} ended with a torn record ({len(tail)} bytes, cut '
          f'short by a kill while it was written); dropped it: {tail[:60]!r}',
          flush=True)
    return
  with open(path, 'ab') as f:
    f.write(b'\n')


def read_metrics(workdir: str, kind: Optional[str] = None):
  """Reads the JSONL records back (for tests and notebooks).

  A torn final line (a run killed while writing it) is skipped.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    lines = f.read().split('\n')
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except ValueError:
      if i < len(lines) - 1:
        raise
  return [r for r in records if kind is None or r['kind'] == kind]


class LogWindow:
  """The steps between two log lines: metrics averaged, throughput measured."""

  def __init__(self, batch_size: int, steps_per_epoch: int):
    self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
    self._steps, self._start = [], time.time()

  def add(self, metrics: Dict[str, float], step_time: float) -> None:
    self._steps.append((metrics, step_time))

  def summary(self, step: int) -> Dict[str, float]:
    """Window means (lr: the last), step time, pairs/s and epoch; starts a new window."""
    wall = time.time() - self._start
    last = self._steps[-1][0]
    avg = {k: float(np.mean([m[k] for m, _ in self._steps])) for k in last}
    avg['lr'] = last['lr']
    avg['step_time'] = float(np.mean([t for _, t in self._steps]))
    avg['pairs_per_sec'] = self.batch_size * len(self._steps) / max(wall, 1e-9)
    avg['epoch'] = step / self.steps_per_epoch
    self._steps, self._start = [], time.time()
    return avg
