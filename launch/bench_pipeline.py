"""Pairs/s delivered by rrl_jax.data.pipeline.BatchIterator (target: > 20,000; README, "Datasets").

  python -m launch.bench_pipeline [--num_examples=100000] [--batches=3000]

Uses random uint8 patches in memory (what load_split returns), so it measures the
pipeline alone: index drawing, the gather and the prefetch thread hand-off.
"""
import argparse
import time

import numpy as np

from rrl_jax.data.pipeline import BatchIterator


def measure(patches, labels, batches, **kwargs) -> float:
  it = BatchIterator(patches, labels, **kwargs)
  next(it)  # start the prefetch thread
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  elapsed = time.perf_counter() - start
  it.close()
  return batches * len(batch['label']) / elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--num_examples', type=int, default=100_000)
  parser.add_argument('--batches', type=int, default=3000)
  parser.add_argument('--global_batch_size', type=int, default=64)
  args = parser.parse_args()
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
  main()
