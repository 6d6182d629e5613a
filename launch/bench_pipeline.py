"""Pairs/s delivered by rrl_jax.data.pipeline.BatchIterator (target: > 20,000; README, "Datasets").

  python -m launch.bench_pipeline [--num_examples=100000] [--batches=3000]

Uses random uint8 patches in memory (what load_split returns), so it measures the
pipeline alone: index drawing, the gather and the prefetch thread hand-off.
"""
import time

from absl import app
from absl import flags
import numpy as np

from rrl_jax import cli
from rrl_jax.data.pipeline import BatchIterator

_NUM_EXAMPLES = flags.DEFINE_integer('num_examples', 100_000, 'Pairs held in memory.')
_BATCHES = flags.DEFINE_integer('batches', 3000, 'Batches timed per setting.')
_BATCH_SIZE = flags.DEFINE_integer('global_batch_size', 64, 'Pairs per batch.')
cli.define_help_flags()


def measure(patches, labels, batches, **kwargs) -> float:
  it = BatchIterator(patches, labels, **kwargs)
  next(it)  # start the prefetch thread
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  elapsed = time.perf_counter() - start
  it.close()
  return batches * len(batch['label']) / elapsed


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  args = flags.FLAGS
  rng = np.random.default_rng(0)
  patches = rng.integers(0, 256, (args.num_examples, 2, 64, 64), dtype=np.uint8)
  labels = rng.integers(0, 2, args.num_examples, dtype=np.int32)
  for mode in ('official', 'epoch'):
    for prefetch in (0, 2):
      rate = measure(patches, labels, args.batches, global_batch_size=args.global_batch_size,
                     seed=0, mode=mode, prefetch=prefetch)
      print(f'mode={mode:8s} prefetch={prefetch}  batch={args.global_batch_size}  '
            f'{rate:,.0f} pairs/s')


if __name__ == '__main__':
  app.run(main)
