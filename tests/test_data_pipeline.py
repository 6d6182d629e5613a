"""BatchIterator: determinism, official draws, epochs, sharding, exact resume."""
import json

import numpy as np
import pytest

from rrl_jax.data.pipeline import BatchIterator


def _data(n=200):
  patches = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 64, 64), np.uint8)
  patches[:, 1] += 1
  return patches, (np.arange(n) % 2).astype(np.int32)


def _take(it, k):
  return [next(it) for _ in range(k)]


def _ids(batch):
  return batch['xa'][:, 0, 0, 0].astype(int)


@pytest.mark.parametrize('mode', ['official', 'epoch'])
@pytest.mark.parametrize('prefetch', [0, 2])
def test_deterministic_and_well_formed(mode, prefetch):
  patches, labels = _data()
  make = lambda seed: BatchIterator(patches, labels, global_batch_size=16, seed=seed, mode=mode,
                                    prefetch=prefetch)
  a, b, c = _take(make(3), 30), _take(make(3), 30), _take(make(4), 30)
  batch = a[0]
  assert batch['xa'].shape == (16, 64, 64, 1) and batch['xa'].dtype == np.uint8
  assert batch['xb'].shape == (16, 64, 64, 1) and batch['label'].dtype == np.int32
  np.testing.assert_array_equal(batch['xb'][:, 0, 0, 0], batch['xa'][:, 0, 0, 0] + 1)
  np.testing.assert_array_equal(batch['label'], _ids(batch) % 2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(_ids(x), _ids(y))
  assert any((_ids(x) != _ids(y)).any() for x, y in zip(a, c))
  assert all(len(set(_ids(x))) == 16 for x in a)  # distinct within a batch, as gen4


def test_epoch_mode_is_a_permutation():
  patches, labels = _data(200)
  it = BatchIterator(patches, labels, global_batch_size=16, seed=0, mode='epoch')
  assert it.steps_per_epoch == 12
  seen = np.concatenate([_ids(b) for b in _take(it, 12)])
  assert len(set(seen)) == 192
  assert it.get_state()['epoch'] == 1 and it.get_state()['step'] == 0
  nxt = np.concatenate([_ids(b) for b in _take(it, 12)])
  assert (seen != nxt).any()


@pytest.mark.parametrize('mode', ['official', 'epoch'])
def test_two_processes_concatenate_to_the_global_batch(mode):
  patches, labels = _data()
  whole = BatchIterator(patches, labels, global_batch_size=16, seed=1, mode=mode)
  parts = [BatchIterator(patches, labels, global_batch_size=16, seed=1, mode=mode,
                         process_index=p, process_count=2) for p in (0, 1)]
  for _ in range(15):
    g = next(whole)
    local = [next(p) for p in parts]
    assert local[0]['xa'].shape[0] == 8
    for key in ('xa', 'xb', 'label'):
      np.testing.assert_array_equal(np.concatenate([l[key] for l in local]), g[key])


@pytest.mark.parametrize('mode', ['official', 'epoch'])
def test_resume_sees_exactly_the_same_batches(mode):
  patches, labels = _data()
  make = lambda: BatchIterator(patches, labels, global_batch_size=16, seed=5, mode=mode)
  reference = _take(make(), 40)
  first = make()
  _take(first, 17)  # crosses an epoch boundary (12 steps per epoch)
  state = json.loads(json.dumps(first.get_state()))
  first.close()
  resumed = make()
  resumed.set_state(state)
  for want, got in zip(reference[17:], _take(resumed, 23)):
    np.testing.assert_array_equal(_ids(want), _ids(got))
  # set_state on a running iterator (prefetch thread active) rewinds exactly too.
  resumed.set_state(state)
  np.testing.assert_array_equal(_ids(next(resumed)), _ids(reference[17]))
  with pytest.raises(ValueError, match='seed'):
    make().set_state(dict(state, seed=6))


def test_bad_arguments():
  patches, labels = _data()
  with pytest.raises(ValueError, match='divisible'):
    BatchIterator(patches, labels, global_batch_size=15, seed=0, process_count=2)
  with pytest.raises(ValueError, match='mode'):
    BatchIterator(patches, labels, global_batch_size=16, seed=0, mode='random')


class _Failing(BatchIterator):
  def batch(self, epoch, step):
    if step == 2:
      raise ValueError('negative dimensions are not allowed')
    return super().batch(epoch, step)


def test_producer_thread_error_reaches_the_consumer():
  patches, labels = _data()
  it = _Failing(patches, labels, global_batch_size=16, seed=0, prefetch=2)
  _take(it, 2)
  with pytest.raises(ValueError, match='negative dimensions'):
    next(it)  # Re-raised here, not a hang.
  it.close()


def test_non_positive_batch_is_refused():
  patches, labels = _data()
  for b in (0, -3):
    with pytest.raises(ValueError, match='positive'):
      BatchIterator(patches, labels, global_batch_size=b, seed=0)


def test_draws_are_todays_official_and_epoch_draws():
  """The stream reproduces the seeded draws runs were trained with (trajectories unchanged)."""
  patches, labels = _data()
  for mode in ('official', 'epoch'):
    it = BatchIterator(patches, labels, global_batch_size=16, seed=7, mode=mode)
    got = [_ids(b) for b in _take(it, 14)]  # 12 steps per epoch: crosses into epoch 1
    it.close()
    for k, ids in enumerate(got):
      epoch, step = divmod(k, 12)
      if mode == 'official':
        want = np.random.default_rng([7, epoch, step]).choice(200, size=16, replace=False)
      else:
        want = np.random.default_rng([7, epoch]).permutation(200)[step * 16:(step + 1) * 16]
      np.testing.assert_array_equal(ids, want)


def test_state_saved_before_grain_resumes_and_a_mismatch_is_one_line():
  patches, labels = _data()
  reference = _take(BatchIterator(patches, labels, global_batch_size=16, seed=2), 20)
  # BatchIterator.get_state() as checkpoints stored it before the grain stream.
  saved = {'epoch': 1, 'step': 3, 'seed': 2, 'mode': 'official', 'num_examples': 200,
           'global_batch_size': 16}
  it = BatchIterator(patches, labels, global_batch_size=16, seed=2)
  it.set_state(saved)
  np.testing.assert_array_equal(_ids(next(it)), _ids(reference[15]))
  it.close()
  with pytest.raises(ValueError) as e:
    BatchIterator(patches[:150], labels[:150], global_batch_size=16, seed=2).set_state(saved)
  assert str(e.value) == "its num_examples is 200, this run's is 150"


def test_each_process_reads_only_its_rows():
  from rrl_jax.data import sources  # pylint: disable=g-import-not-at-top
  patches, labels = _data()
  reads = {0: [], 1: []}

  class Counting(sources.ArrayPairs):
    def __init__(self, array, log):
      super().__init__(array)
      self.log = log

    def _rows(self, indices):
      self.log.append(sorted(indices.tolist()))
      return super()._rows(indices)

  whole = BatchIterator(patches, labels, global_batch_size=16, seed=4)
  for p in (0, 1):
    it = BatchIterator(Counting(patches, reads[p]), labels, global_batch_size=16, seed=4,
                       process_index=p, process_count=2, prefetch=0)
    _take(it, 5)
  for k in range(5):
    batch = whole.global_indices(0, k)
    assert reads[0][k] == sorted(batch[:8].tolist())
    assert reads[1][k] == sorted(batch[8:].tolist())
