"""Data pipeline benchmarks (README, "Datasets").

In memory (default): pairs/s of rrl_jax.data.pipeline.BatchIterator over random
uint8 patches held in memory (index drawing, the gather, grain's read-ahead):
  python -m launch.bench_pipeline [--num_examples=100000] [--batches=3000]

At scale (--scale=N): writes VIS-NIR-format packs of N pairs per split under
--scale_dir (country for training, --test_splits test categories), builds them,
then runs a whole `launch.main` (training, selection, precise BN, test
evaluation; reduced widths, --steps steps) and reports its peak RSS, the time to
its first training step, and the pipeline's pairs/s on the disk-backed split
(augmentation is on the device, so none here). Compare two scales:
  python -m launch.bench_pipeline --scale=40000 --scale_dir=/tmp/s40k
  python -m launch.bench_pipeline --scale=400000 --scale_dir=/tmp/s400k
"""
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from rrl_jax import cli
from rrl_jax.data.pipeline import BatchIterator

_NUM_EXAMPLES = flags.DEFINE_integer('num_examples', 100_000, 'Pairs held in memory.')
_BATCHES = flags.DEFINE_integer('batches', 3000, 'Batches timed per setting.')
_BATCH_SIZE = flags.DEFINE_integer('global_batch_size', 64, 'Pairs per batch.')
_SCALE = flags.DEFINE_integer('scale', 0, 'Pairs per split of the at-scale run (0: in '
                              'memory only).')
_SCALE_DIR = flags.DEFINE_string('scale_dir', None, 'Where the at-scale packs, build '
                                 'and run go (needs ~8.3 KB per pair of disk, twice).')
_TEST_SPLITS = flags.DEFINE_integer('test_splits', 1, 'VIS-NIR test categories written '
                                    'and evaluated (1-8), each of --scale pairs.')
_STEPS = flags.DEFINE_integer('steps', 4, 'Training steps of the at-scale run.')
_KEEP = flags.DEFINE_bool('keep', False, 'Keep the packs, build and run afterwards.')
cli.define_help_flags()

_CATEGORIES = ('field', 'forest', 'indoor', 'mountain', 'oldbuilding', 'street', 'urban',
               'water')


def measure(patches, labels, batches, **kwargs) -> float:
  it = BatchIterator(patches, labels, **kwargs)
  next(it)  # start the read-ahead
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  elapsed = time.perf_counter() - start
  it.close()
  return batches * len(batch['label']) / elapsed


def write_pack(manual: str, split: str, num_pairs: int, seed: int) -> None:
  """A VIS-NIR-format pack (split.npy uint8 (N, 2, 64, 64), split_label.npy), chunk by chunk."""
  rng = np.random.default_rng(seed)
  images = np.lib.format.open_memmap(os.path.join(manual, f'{split}.npy'), 'w+', np.uint8,
                                     (num_pairs, 2, 64, 64))
  for start in range(0, num_pairs, 8192):
    stop = min(num_pairs, start + 8192)
    images[start:stop] = rng.integers(0, 256, (stop - start, 2, 64, 64), dtype=np.uint8)
    images.flush()
  del images
  np.save(os.path.join(manual, f'{split}_label.npy'),
          (np.arange(num_pairs) % 2).astype(np.uint8))


def _peak_rss_mb(pid: int) -> float:
  """VmHWM of a live process (its own peak RSS since exec), 0 once it has exited.

  Not wait4's ru_maxrss: Linux carries the spawning process's peak over into the
  child's, so a parent that wrote 3 GB of packs would report 3 GB for every child.
  """
  try:
    with open(f'/proc/{pid}/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return 0.0


def run_child(argv, log_path, first_step_file=None):
  """Runs argv (output to log_path); returns (seconds, peak RSS MB, seconds to first step)."""
  start = time.time()
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
  first, peak = None, 0.0
  while True:
    peak = max(peak, _peak_rss_mb(proc.pid))  # polled every 50 ms until the exit
    if first is None and first_step_file and os.path.exists(first_step_file):
      with open(first_step_file) as f:
        if any('"kind": "train"' in line for line in f):
          first = time.time() - start
    pid, status = os.waitpid(proc.pid, os.WNOHANG)
    if pid:
      break
    time.sleep(0.05)
  if os.waitstatus_to_exitcode(status):
    with open(log_path) as f:
      tail = f.read()[-3000:]
    raise SystemExit(f'{" ".join(argv[:4])} ... failed (log: {log_path}):\n{tail}')
  return time.time() - start, peak, first


_CONFIG = """from configs import vis_nir


def get_config(arg=''):
  c = vis_nir.get_config(arg)
  c.dataset.manual_dir, c.dataset.data_dir = {manual!r}, {tfds_dir!r}
  c.dataset.builder_kwargs.splits = {splits!r}
  c.dataset.test_splits = {tests!r}
  c.protocol = 'clean'  # selection on a validation split carved from country
  c.model.widths, c.model.head_hidden = (4, 8, 8, 16, 16), (16, 8)
  c.recon_loss = 'mse'
  c.num_train_steps = c.eval_every = c.checkpoint_every = {steps}
  c.log_every = 1
  c.bn_recalibration.batches = 2
  c.eval_batch_size = 1024
  return c
"""


def at_scale(args) -> None:
  root = os.path.abspath(os.path.expanduser(args.scale_dir))
  manual, tfds_dir, workdir = (os.path.join(root, d) for d in ('manual', 'tfds', 'run'))
  os.makedirs(manual, exist_ok=True)
  shutil.rmtree(workdir, ignore_errors=True)
  n, tests = args.scale, _CATEGORIES[:args.test_splits]
  splits = ('country',) + tests
  t = time.time()
  for i, split in enumerate(splits):
    if not os.path.exists(os.path.join(manual, f'{split}_label.npy')):
      write_pack(manual, split, n, seed=i)
  print(f'packs: {len(splits)} x {n:,} pairs in {manual} ({time.time() - t:.0f} s)', flush=True)
  data_kwargs = dict(data_dir=tfds_dir, manual_dir=manual, splits=splits)
  build = ('from rrl_jax import data; data.prepare(data.get_builder("vis_nir", '
           f'**{data_kwargs!r}))')
  seconds, rss, _ = run_child([sys.executable, '-c', build], os.path.join(root, 'build.log'))
  print(f'build (or reuse): {seconds:.0f} s, peak RSS {rss:,.0f} MB', flush=True)
  config_file = os.path.join(root, 'bench_config.py')
  with open(config_file, 'w') as f:
    f.write(_CONFIG.format(manual=manual, tfds_dir=tfds_dir, splits=splits, tests=tests,
                           steps=args.steps))
  argv = [sys.executable, '-m', 'launch.main', f'--config={config_file}',
          f'--workdir={workdir}']
  seconds, rss, first = run_child(argv, os.path.join(root, 'main.log'),
                                 os.path.join(workdir, 'metrics.jsonl'))
  print(f'launch.main ({len(tests)} test split(s) of {n:,}, {args.steps} steps): '
        f'{seconds:.0f} s, peak RSS {rss:,.0f} MB, first step after '
        f'{first if first is not None else float("nan"):.1f} s', flush=True)
  from rrl_jax import data  # pylint: disable=g-import-not-at-top
  patches, labels = data.open_split('vis_nir', 'country', **data_kwargs)
  rate = measure(patches, labels, min(args.batches, 500), global_batch_size=args.global_batch_size,
                 seed=0, mode='official')
  print(f'disk-backed pipeline (country, {n:,} pairs, official draws, batch '
        f'{args.global_batch_size}): {rate:,.0f} pairs/s', flush=True)
  if not args.keep:
    shutil.rmtree(root, ignore_errors=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  args = flags.FLAGS
  if args.scale:
    if not args.scale_dir:
      raise app.UsageError('--scale needs --scale_dir')
    if not 1 <= args.test_splits <= len(_CATEGORIES):
      raise app.UsageError(f'--test_splits must be in 1..{len(_CATEGORIES)}')
    at_scale(args)
    return
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
