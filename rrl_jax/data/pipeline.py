"""In-memory batch iterator: seeded, shardable, exactly resumable (README, "Datasets").

Every global batch is a pure function of (seed, epoch, step), so the iterator's
position is just the next (epoch, step) and a resumed run sees exactly the
batches it would have seen. Modes:
- 'official': an epoch is N // B batches, each B distinct indices drawn uniformly
  at random, independently of other batches (the official gen4 draws: "an epoch
  is N/64 random batches", docs/training.md);
- 'epoch': a seeded permutation per epoch, cut into N // B batches (remainder dropped).
Process p of P receives rows [p*B/P, (p+1)*B/P) of each global batch. Host work
is one gather of uint8 rows; augmentation and /255 run on the device.
"""
import queue
import threading
from typing import Any, Dict, Iterator

import numpy as np

MODES = ('official', 'epoch')
_FAILED = object()  # Queue marker: the producer raised; the item is the error.


class BatchIterator:
  """Yields {'xa', 'xb': uint8 (local_B, 64, 64, 1), 'label': int32 (local_B,)}."""

  def __init__(self, patches: np.ndarray, labels: np.ndarray, *, global_batch_size: int,
               seed: int, mode: str = 'official', process_index: int = 0,
               process_count: int = 1, prefetch: int = 2):
    if mode not in MODES:
      raise ValueError(f'mode must be one of {MODES}, found {mode!r}')
    if patches.ndim != 4 or patches.shape[1] != 2 or len(patches) != len(labels):
      raise ValueError(f'expected patches (N, 2, H, W) and labels (N,), found '
                       f'{patches.shape} and {np.shape(labels)}')
    if not isinstance(global_batch_size, (int, np.integer)) or global_batch_size < 1:
      raise ValueError(f'global_batch_size must be a positive integer, found '
                       f'{global_batch_size!r}')
    if global_batch_size % process_count:
      raise ValueError(f'global_batch_size {global_batch_size} is not divisible by '
                       f'process_count {process_count}')
    if not 0 <= process_index < process_count:
      raise ValueError(f'process_index {process_index} not in [0, {process_count})')
    if len(labels) < global_batch_size:
      raise ValueError(f'{len(labels)} examples cannot fill one batch of {global_batch_size}')
    self._patches = patches
    self._labels = np.asarray(labels, np.int32)
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self._rows = slice(process_index * self.local_batch_size,
                       (process_index + 1) * self.local_batch_size)
    self.seed, self.mode = int(seed), mode
    self._prefetch = prefetch
    self._epoch = self._step = 0
    self._permutation = (None, None)  # (epoch, permutation) for 'epoch' mode
    self._thread = None

  @property
  def steps_per_epoch(self) -> int:
    return len(self._labels) // self.global_batch_size

  # --- position ------------------------------------------------------------
  def get_state(self) -> Dict[str, Any]:
    """The position of the next batch to be returned (JSON-serializable)."""
    return {'epoch': self._epoch, 'step': self._step, 'seed': self.seed, 'mode': self.mode,
            'num_examples': len(self._labels), 'global_batch_size': self.global_batch_size}

  def set_state(self, state: Dict[str, Any]) -> None:
    """Restores a position from get_state(); refuses a state from another stream."""
    for key in ('seed', 'mode', 'num_examples', 'global_batch_size'):
      if key in state and state[key] != self.get_state()[key]:
        raise ValueError(f'state {key}={state[key]!r} does not match this iterator '
                         f'({self.get_state()[key]!r})')
    self._stop_prefetch()
    self._epoch, self._step = int(state['epoch']), int(state['step'])

  # --- batches -------------------------------------------------------------
  def global_indices(self, epoch: int, step: int) -> np.ndarray:
    """Example indices of global batch `step` of `epoch`."""
    b = self.global_batch_size
    if self.mode == 'official':
      rng = np.random.default_rng([self.seed, epoch, step])
      return rng.choice(len(self._labels), size=b, replace=False)
    if self._permutation[0] != epoch:
      rng = np.random.default_rng([self.seed, epoch])
      self._permutation = (epoch, rng.permutation(len(self._labels)))
    return self._permutation[1][step * b:(step + 1) * b]

  def batch(self, epoch: int, step: int) -> Dict[str, np.ndarray]:
    """This process's share of global batch `step` of `epoch`."""
    idx = self.global_indices(epoch, step)[self._rows]
    pairs = self._patches[idx]
    return {'xa': pairs[:, 0, :, :, None], 'xb': pairs[:, 1, :, :, None],
            'label': self._labels[idx]}

  def _advance(self, epoch, step):
    step += 1
    return (epoch + 1, 0) if step == self.steps_per_epoch else (epoch, step)

  def __iter__(self) -> Iterator[Dict[str, np.ndarray]]:
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    if self._prefetch <= 0:
      out = self.batch(self._epoch, self._step)
    else:
      if self._thread is None:
        self._start_prefetch()
      position, out = self._get()
      assert position == (self._epoch, self._step), (position, self._epoch, self._step)
    self._epoch, self._step = self._advance(self._epoch, self._step)
    return out

  # --- background prefetch -------------------------------------------------
  def _start_prefetch(self):
    self._queue = queue.Queue(maxsize=self._prefetch)
    self._stop = threading.Event()
    stop, q, start = self._stop, self._queue, (self._epoch, self._step)

    def put(item):
      while not stop.is_set():
        try:
          q.put(item, timeout=0.1)
          return
        except queue.Full:
          continue

    def produce():
      epoch, step = start
      try:
        while not stop.is_set():
          put(((epoch, step), self.batch(epoch, step)))
          epoch, step = self._advance(epoch, step)
      except BaseException as e:  # pylint: disable=broad-except
        put((_FAILED, e))  # Re-raised by __next__ in the consuming thread.

    self._thread = threading.Thread(target=produce, daemon=True, name='BatchIterator')
    self._thread.start()

  def _get(self):
    """The next prefetched item; re-raises the producer thread's exception."""
    while True:
      try:
        position, out = self._queue.get(timeout=1.0)
      except queue.Empty:
        if not self._thread.is_alive():  # Died without a word: never hang.
          raise RuntimeError('BatchIterator: the prefetch thread stopped.') from None
        continue
      if position is _FAILED:
        self._thread.join()
        self._thread = None
        raise out
      return position, out

  def _stop_prefetch(self):
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self._thread = None

  def close(self):
    self._stop_prefetch()

  def __del__(self):
    try:
      self._stop_prefetch()
    except Exception:  # pylint: disable=broad-except
      pass
