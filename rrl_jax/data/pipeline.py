"""The training batch stream: seeded, shardable, exactly resumable (README, "Datasets").

Every global batch is a pure function of (seed, epoch, step), so the iterator's
position is just the next (epoch, step) and a resumed run sees exactly the
batches it would have seen. Modes:
- 'official': an epoch is N // B batches, each B distinct indices drawn uniformly
  at random, independently of other batches (the official gen4 draws: "an epoch
  is N/64 random batches", docs/training.md);
- 'epoch': a seeded permutation per epoch, cut into N // B batches (remainder dropped).
Process p of P reads only rows [p*B/P, (p+1)*B/P) of each global batch from its
source (sources.PairSource: a split on disk, or an array in memory; one code
path). Batches are read ahead by grain worker threads (`prefetch` of them);
host work is one gather of uint8 rows; augmentation and /255 run on the device.
"""
from typing import Any, Dict, Iterator

import numpy as np

from rrl_jax.data import sources

MODES = ('official', 'epoch')
_ENDLESS = 2**62  # grain stream length: past any run's last step


class BatchIterator:
  """Yields {'xa', 'xb': uint8 (local_B, 64, 64, 1), 'label': int32 (local_B,)}."""

  def __init__(self, patches: Any, labels: np.ndarray, *, global_batch_size: int,
               seed: int, mode: str = 'official', process_index: int = 0,
               process_count: int = 1, prefetch: int = 2):
    if mode not in MODES:
      raise ValueError(f'mode must be one of {MODES}, found {mode!r}')
    if np.ndim(patches) != 4 or np.shape(patches)[1] != 2 or len(patches) != len(labels):
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
    self._patches = sources.as_source(patches)
    self._labels = np.asarray(labels, np.int32)
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self._rows = slice(process_index * self.local_batch_size,
                       (process_index + 1) * self.local_batch_size)
    self.seed, self.mode = int(seed), mode
    self._prefetch = prefetch
    self._epoch = self._step = 0
    self._permutation = (None, None)  # (epoch, permutation) for 'epoch' mode
    self._stream = None  # grain iterator of (position, batch), started by __next__

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
        raise ValueError(f'its {key} is {state[key]!r}, this run\'s is '
                         f'{self.get_state()[key]!r}')
    self._stop_stream()
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
      if self._stream is None:
        self._stream = self._start_stream()
      position, out = next(self._stream)
      assert position == (self._epoch, self._step), (position, self._epoch, self._step)
    self._epoch, self._step = self._advance(self._epoch, self._step)
    return out

  # --- background reading (grain) -----------------------------------------
  def _positioned_batch(self, flat_step: int):
    position = divmod(int(flat_step), self.steps_per_epoch)
    return position, self.batch(*position)

  def _start_stream(self):
    """A grain stream of (position, batch) from the current position on.

    Batch k (counted over epochs) is read by grain's worker threads ahead of the
    step; the order, and so the trajectory, does not depend on the threads.
    """
    import grain  # pylint: disable=g-import-not-at-top
    first = self._epoch * self.steps_per_epoch + self._step
    steps = grain.MapDataset.range(first, _ENDLESS).map(self._positioned_batch)
    return iter(steps.to_iter_dataset(grain.ReadOptions(
        num_threads=self._prefetch, prefetch_buffer_size=self._prefetch)))

  def _stop_stream(self):
    if self._stream is not None:
      close = getattr(self._stream, 'close', None)
      if close is not None:
        close()
      self._stream = None

  def close(self):
    self._stop_stream()

  def __del__(self):
    try:
      self._stop_stream()
    except Exception:  # pylint: disable=broad-except
      pass
