"""Benchmark harness: train step, inference, MLPP, pipeline (RRL-Net by default).

  python -m launch.bench                                   # everything, defaults
  python -m launch.bench --model=fil_net --parts=train,infer   # any network/variant
  python -m launch.bench --parts=train,infer --repeats=5 --out=bench.json
  python -m launch.bench --parts=infer --infer_batch_sizes=256,512 --dtypes=bfloat16

Parts (--parts, comma separated):
  peak      large matmul (--peak_n) in float32 and bfloat16: the device's
            measured FLOP/s ceiling that every other row is compared against.
  train     the step training runs: rrl_jax.training.step.make_train_step with
            configs/default.py:<--model> (on-device augmentation on; state
            donated; forward in train mode, the model's official objective
            (RRL-Net: 6 BCE + 2 reconstruction losses), gradients, its
            optimizer, BatchNorm statistics) at --train_batch_sizes;
            --recon_loss=mse (default, the reference workload) or perceptual.
  trainpure the same step with augmentation off.
  infer     MLPP inference: the pruned subtree, score_only=True (the deployed
            match logit) at --infer_batch_sizes.
  full      the full model in inference mode returning all outputs (so jit
            cannot drop the unused heads): the "before MLPP" comparison.
  pipeline  pairs/s of rrl_jax.data.pipeline.BatchIterator (launch.bench_pipeline).
  folded    BatchNorm-folded scorer vs the unfolded one, timed alternately in
            the same run at --infer_batch_sizes (launch.bench_deploy).
  match     end to end: `launch.match` on --match_pairs pairs (process start
            included), from a checkpoint and from an export (launch.bench_deploy).

Every compute row is measured for each --dtypes entry and each --devices entry
('one' = the first device, 'all' = a data-parallel mesh over jax.devices();
'all' is skipped when there is a single device). Each row: compile time
(lower + compile), --warmup untimed calls, then --repeats timed calls each
ending in block_until_ready; median, min, max and the relative spread
(max - min) / median. FLOPs per pair come from XLA's cost analysis of the
compiled executable; achieved FLOP/s is reported as a percentage of the
measured matmul peak of the same dtype. Memory: the executable's
memory_analysis (arguments + outputs + temporaries), the device's
peak_bytes_in_use where the backend reports it (GPU/TPU), and the process RSS
high-water mark (CPU; process-wide, so monotone over the run).

Results print as a table and, with --out, go to a JSON file together with the
machine description (jax/jaxlib versions, devices, CPU model, load average).
"""
import dataclasses
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import app
from absl import flags

import jax
import jax.numpy as jnp
import numpy as np

from launch import bench_measure as measure
from rrl_jax import cli
from rrl_jax import pruning
from rrl_jax import sharding
from rrl_jax import xla_cpu as perf
from rrl_jax.models import RRLNet, variants

FLAGS = flags.FLAGS
PARTS = ('peak', 'train', 'trainpure', 'infer', 'full', 'pipeline', 'folded',
         'match')


# ----------------------------------------------------------------------------
# Workloads.


def make_mesh(which: str):
  """'one': the first device; 'all': every device (rrl_jax.sharding.data_mesh)."""
  return sharding.data_mesh(jax.devices()[:1] if which == 'one' else None)


def shard_batch(mesh, *arrays):
  batched = sharding.batch_sharding(mesh)
  return tuple(jax.device_put(a, batched) for a in arrays)


def replicate(mesh, tree):
  return jax.device_put(tree, sharding.replicated(mesh))


def random_patches(batch: int, patch: int, seed: int):
  rng = np.random.default_rng(seed)
  xa = rng.random((batch, patch, patch, 1), dtype=np.float32)
  xb = rng.random((batch, patch, patch, 1), dtype=np.float32)
  return xa, xb


def init_variables(model: RRLNet, seed: int = 0):
  x = jnp.zeros((2, model.patch_size, model.patch_size, 1), jnp.float32)
  return jax.jit(lambda k: model.init(k, x, x, train=True))(jax.random.key(seed))


def architecture_overrides(args) -> Dict[str, Any]:
  """--widths / --head_hidden when given (else the model's defaults)."""
  kw = {}
  if args.widths:
    kw['widths'] = tuple(args.widths)
  if args.head_hidden:
    kw['head_hidden'] = tuple(args.head_hidden)
  return kw


def build_model(args, dtype: str):
  kw = architecture_overrides(args)
  if dtype == 'bfloat16':
    kw['dtype'] = jnp.bfloat16
  return variants.build(args.model, **kw)


def measure_compiled(lowered_fn, call, batch: int, args, devices,
                     extra: Dict[str, Any]) -> Dict[str, Any]:
  """Compiles (timed), runs warm-up + repeats, returns a result row."""
  start = time.perf_counter()
  compiled = lowered_fn()
  compile_s = time.perf_counter() - start
  times = measure.time_calls(lambda: call(compiled), args.repeats, args.warmup)
  row = dict(extra)
  row.update(measure.summarize(times))
  flops = measure.cost_flops(compiled)
  if flops:  # SPMD executables report the cost of one device's shard.
    flops *= max(1, int(extra.get('num_devices', 1)))
  row.update(
      batch=batch, compile_s=compile_s,
      pairs_per_s=batch / row['median_s'],
      flops_per_pair=flops / batch if flops else None,
      achieved_flops=flops / row['median_s'] if flops else None,
      executable_bytes=measure.executable_bytes(compiled),
      device_peak_bytes=measure.device_peak_bytes(devices),
      rss_peak_bytes=measure.rss_peak_bytes())
  return row


def bench_infer(args, dtype: str, which: str, batch: int, full: bool):
  model = build_model(args, dtype)
  mesh = make_mesh(which)
  if batch % mesh.size:
    return None
  variables = init_variables(model)
  if full:
    variables = {'params': variables['params'],
                 'batch_stats': variables['batch_stats']}
    fn = lambda v, a, b: model.apply(v, a, b, train=False)  # all 8 outputs
  else:
    variables = pruning.inference_variables(variables, model)
    fn = lambda v, a, b: pruning.match_logit(model, v, a, b)
  variables = replicate(mesh, variables)
  xa, xb = shard_batch(mesh, *random_patches(batch, model.patch_size, args.seed))
  jitted = jax.jit(fn)
  row = measure_compiled(
      lambda: jitted.lower(variables, xa, xb).compile(),
      lambda c: c(variables, xa, xb), batch, args, mesh.devices.flat,
      dict(part='full' if full else 'infer', model=args.model, dtype=dtype,
           devices=which,
           num_devices=mesh.size,
           params=pruning.count_parameters(variables['params'])))
  return row


def bench_train(args, dtype: str, which: str, batch: int, augment: bool):
  """The real training step (rrl_jax.training.step.make_train_step), nothing else.

  augment=True is the step training runs with configs/default.py (on-device
  augmentation on); False the pure step. Any failure to build it is raised.
  """
  from configs import default as default_config  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import losses
  from rrl_jax.training import optim  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import step as ts  # pylint: disable=g-import-not-at-top
  mesh = make_mesh(which)
  if batch % mesh.size:
    return None
  config = default_config.get_config(args.model)
  config.model.update(architecture_overrides(args))
  config.dtype = dtype
  config.batch_size = batch
  config.recon_loss = args.recon_loss
  config.augment.enabled = augment
  model = ts.make_model(config)
  tx = optim.make_optimizer(config.optimizer)
  vgg = None
  if args.recon_loss == 'perceptual':
    from rrl_jax.training import vgg19  # pylint: disable=g-import-not-at-top
    vgg = vgg19.load_vgg19_params(os.path.expanduser(args.vgg19_weights))
  recon_loss = losses.make_recon_loss(args.recon_loss, vgg_params=vgg)
  xa, xb = random_patches(batch, model.patch_size, args.seed)
  labels = np.random.default_rng(args.seed).integers(0, 2, batch).astype(np.int32)
  state = ts.init_state(model, tx, config, mesh)
  step = ts.make_train_step(model, tx, config, mesh, jax.random.key(0),
                            recon_loss, lambda s: 2e-4)
  # The real step takes uint8 patches (it divides by 255 on device).
  batch_arrays = ts.global_batch({'xa': np.round(xa * 255).astype(np.uint8),
                                  'xb': np.round(xb * 255).astype(np.uint8),
                                  'label': labels}, mesh)
  weights = ts.loss_weights(config, mesh)
  holder = {'state': state}

  def call(compiled):
    holder['state'], metrics = compiled(holder['state'], batch_arrays, weights)
    return metrics

  part = 'train' if augment else 'trainpure'
  row = measure_compiled(
      lambda: step.lower(holder['state'], batch_arrays, weights).compile(),
      call, batch, args, mesh.devices.flat,
      dict(part=part, model=args.model, dtype=dtype, devices=which,
           num_devices=mesh.size, recon_loss=args.recon_loss, augment=augment,
           step='rrl_jax.training.step.make_train_step'))
  row['step_s'] = row['median_s']
  return row


def bench_peak(args, dtype: str):
  n = args.peak_n
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), np.float32)).astype(dtype)
  b = jnp.asarray(rng.standard_normal((n, n), np.float32)).astype(dtype)
  fn = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  start = time.perf_counter()
  compiled = fn.lower(a, b).compile()
  compile_s = time.perf_counter() - start
  times = measure.time_calls(lambda: compiled(a, b), max(args.repeats, 5), 1)
  row = dict(part='peak', dtype=dtype, devices='one', num_devices=1, batch=n,
             compile_s=compile_s)
  row.update(measure.summarize(times))
  row['achieved_flops'] = 2.0 * n ** 3 / row['min_s']  # best run: the ceiling
  return row


def bench_pipeline(args):
  from launch import bench_pipeline as bp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  n = args.pipeline_examples
  patches = rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8)
  labels = rng.integers(0, 2, n, dtype=np.int32)
  rates = [bp.measure(patches, labels, args.pipeline_batches,
                      global_batch_size=64, seed=0, mode='official', prefetch=2)
           for _ in range(max(1, min(args.repeats, 3)))]
  med = statistics.median(rates)
  return dict(part='pipeline', dtype='uint8', devices='host', num_devices=0,
              batch=64, pairs_per_s=med, spread=(max(rates) - min(rates)) / med,
              repeats=len(rates), rates=rates)


# ----------------------------------------------------------------------------
# Table.


def _fmt(x, spec):
  return '-' if x is None else format(x, spec)


def format_table(rows: List[Dict[str, Any]], peaks: Dict[str, float]) -> str:
  head = (f"{'part':9s} {'dtype':8s} {'dev':4s} {'batch':>5s} {'median':>9s} "
          f"{'spread':>6s} {'pairs/s':>9s} {'GFLOP/pr':>8s} {'GFLOP/s':>8s} "
          f"{'%peak':>5s} {'compile':>7s} {'exe MiB':>7s} {'RSS MiB':>7s}")
  lines = [head, '-' * len(head)]
  for r in rows:
    peak = peaks.get(r.get('dtype'))
    pct = (100 * r['achieved_flops'] / peak
           if r.get('achieved_flops') and peak and r['part'] != 'peak' else None)
    med = r.get('median_s')
    lines.append(
        f"{r['part']:9s} {r['dtype']:8s} {str(r.get('devices')):4s} "
        f"{r.get('batch', 0):5d} {_fmt(med, '8.4f') + 's' if med else '-':>9s} "
        f"{_fmt(100 * r['spread'] if 'spread' in r else None, '5.1f') + '%':>6s} "
        f"{_fmt(r.get('pairs_per_s'), '9.1f'):>9s} "
        f"{_fmt(r['flops_per_pair'] / 1e9 if r.get('flops_per_pair') else None, '8.3f'):>8s} "
        f"{_fmt(r['achieved_flops'] / 1e9 if r.get('achieved_flops') else None, '8.1f'):>8s} "
        f"{_fmt(pct, '5.1f'):>5s} {_fmt(r.get('compile_s'), '6.1f') + 's' if r.get('compile_s') else '-':>7s} "
        f"{_fmt(r['executable_bytes'] / 2**20 if r.get('executable_bytes') else None, '7.0f'):>7s} "
        f"{_fmt(r['rss_peak_bytes'] / 2**20 if r.get('rss_peak_bytes') else None, '7.0f'):>7s}")
  return '\n'.join(lines)


def mlpp_summary(rows) -> List[str]:
  out = []
  for r in rows:
    if r['part'] != 'infer':
      continue
    for f in rows:
      if (f['part'] == 'full' and f['dtype'] == r['dtype'] and
          f['devices'] == r['devices'] and f['batch'] == r['batch']):
        out.append(
            f"MLPP {r['dtype']} {r['devices']} batch {r['batch']}: pruned "
            f"{r['pairs_per_s']:.1f} vs full {f['pairs_per_s']:.1f} pairs/s "
            f"(x{r['pairs_per_s'] / f['pairs_per_s']:.2f}); parameters "
            f"{r['params']:,} vs {f['params']:,} "
            f"(-{100 * (1 - r['params'] / f['params']):.0f}%)")
  return out


# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Options:
  """What to measure and how; one field per command-line flag (same name)."""
  parts: Tuple[str, ...] = PARTS
  dtypes: Tuple[str, ...] = ('float32', 'bfloat16')
  devices: Tuple[str, ...] = ('one', 'all')
  train_batch_sizes: Tuple[int, ...] = (64, 128)
  infer_batch_sizes: Tuple[int, ...] = (256, 512)
  full_batch_sizes: Optional[Tuple[int, ...]] = None
  repeats: int = 5
  warmup: int = 1
  recon_loss: str = 'mse'
  vgg19_weights: str = '~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
  model: str = 'rrl_net'
  widths: Optional[Tuple[int, ...]] = None
  head_hidden: Optional[Tuple[int, ...]] = None
  peak_n: int = 2048
  pipeline_examples: int = 20_000
  pipeline_batches: int = 500
  seed: int = 0
  match_pairs: int = 5000
  match_batch_size: int = 256
  xla_cpu_convs: str = 'eigen'
  out: str = ''


def options(**kwargs) -> Options:
  """Options(**kwargs) checked; ValueError names a bad --parts, --model, ...."""
  tuples = {k: tuple(v) if isinstance(v, (list, tuple)) else v
            for k, v in kwargs.items()}
  opts = Options(**tuples)
  unknown = sorted(set(opts.parts) - set(PARTS))
  if unknown:
    raise ValueError(f'unknown --parts {unknown}; known: {PARTS}')
  if opts.recon_loss not in ('mse', 'perceptual'):
    raise ValueError(f'--recon_loss={opts.recon_loss!r}: use mse or perceptual')
  if opts.xla_cpu_convs not in perf.CPU_CONVS:
    raise ValueError(f'--xla_cpu_convs={opts.xla_cpu_convs!r}: use one of '
                     f'{perf.CPU_CONVS}')
  variants.resolve(opts.model)  # ValueError naming the known networks.
  if opts.full_batch_sizes is None:
    opts = dataclasses.replace(opts, full_batch_sizes=opts.infer_batch_sizes[:1])
  return opts


def run(args: Options) -> Dict[str, Any]:
  """Measures every selected part; prints the table; writes args.out (JSON)."""
  started = perf.backend_started()
  if args.xla_cpu_convs != 'asis':
    perf.apply_xla_flags(args.xla_cpu_convs)
  info = measure.machine_info()
  # True: flags set after the backend started (e.g. in tests) do not apply.
  info['xla_cpu_convs'] = args.xla_cpu_convs
  info['flags_applied'] = not started
  print('machine:', json.dumps(info), flush=True)
  multi = len(jax.devices()) > 1
  which_devices = [w for w in args.devices if w == 'one' or multi]
  rows, peaks = [], {}

  def add(row):
    if row is None:
      return
    rows.append(row)
    print(format_table([row], peaks).splitlines()[-1], flush=True)

  if 'peak' in args.parts:
    for dtype in args.dtypes:
      row = bench_peak(args, dtype)
      peaks[dtype] = row['achieved_flops']
      add(row)
  for dtype in args.dtypes:
    for which in which_devices:
      for part, augment in (('train', True), ('trainpure', False)):
        if part in args.parts:
          for b in args.train_batch_sizes:
            add(bench_train(args, dtype, which, b, augment))
      if 'infer' in args.parts:
        for b in args.infer_batch_sizes:
          add(bench_infer(args, dtype, which, b, full=False))
      if 'full' in args.parts:
        for b in args.full_batch_sizes:
          add(bench_infer(args, dtype, which, b, full=True))
      if 'folded' in args.parts:
        from launch import bench_deploy  # pylint: disable=g-import-not-at-top
        for b in args.infer_batch_sizes:
          add(bench_deploy.bench_folded(args, dtype, which, b))
  if 'pipeline' in args.parts:
    add(bench_pipeline(args))
  if 'match' in args.parts:
    from launch import bench_deploy  # pylint: disable=g-import-not-at-top
    for row in bench_deploy.bench_match(args):
      add(row)
  info['load_average_end'] = measure.load_average()
  print()
  print(f"{info['cpu']} ({info['backend']}, {info['num_devices']} device(s), "
        f"{info['cpu_count']} CPUs), jax {info['jax']}, Python {info['python']}, "
        f"load {info['load_average']} -> {info['load_average_end']}, "
        f"huge-page malloc {info['huge_page_malloc']}")
  print(format_table(rows, peaks))
  for line in mlpp_summary(rows):
    print(line)
  if {'folded', 'match'} & set(args.parts):
    from launch import bench_deploy  # pylint: disable=g-import-not-at-top
    for line in bench_deploy.fold_summary(rows):
      print(line)
  result = dict(machine=info, args=dataclasses.asdict(args), peaks=peaks, rows=rows)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1, default=str)
    print(f'wrote {args.out}')
  return result


def define_flags(flag_values=FLAGS) -> None:
  """One flag per Options field, same default (defined when run as a program)."""
  d = Options()
  list_flag = lambda name, help_text: flags.DEFINE_list(
      name, list(getattr(d, name)), help_text, flag_values=flag_values)
  int_list = lambda name, help_text: cli.define_int_list(
      name, None if getattr(d, name) is None else list(getattr(d, name)),
      help_text, flag_values)
  list_flag('parts', f'Parts to run, of {",".join(PARTS)}.')
  list_flag('dtypes', 'Compute dtypes.')
  list_flag('devices', "'one' (first device) and/or 'all' (data-parallel mesh).")
  int_list('train_batch_sizes', 'Batch sizes of the train/trainpure rows.')
  int_list('infer_batch_sizes', 'Batch sizes of the infer/folded rows.')
  int_list('full_batch_sizes', 'default: the first of --infer_batch_sizes')
  flags.DEFINE_enum('recon_loss', d.recon_loss, ['mse', 'perceptual'],
                    'Reconstruction loss of the train rows.', flag_values=flag_values)
  flags.DEFINE_string('vgg19_weights', d.vgg19_weights, 'Keras VGG19 notop '
                      'weights (--recon_loss=perceptual).', flag_values=flag_values)
  flags.DEFINE_string('model', d.model, 'network or variant: ' +
                      ', '.join(variants.all_variants()), flag_values=flag_values)
  int_list('widths', "default: the model's own (RRL-Net 16,32,64,128,256)")
  int_list('head_hidden', "default: the model's own (512,256)")
  for name, help_text in (
      ('repeats', 'Timed calls per row.'),
      ('warmup', 'Untimed calls before them.'),
      ('peak_n', 'Side of the peak matmul.'),
      ('pipeline_examples', 'Pairs in memory for the pipeline row.'),
      ('pipeline_batches', 'Batches per pipeline measurement.'),
      ('seed', 'Seed of the random inputs.'),
      ('match_pairs', "Pairs in the match rows' pack."),
      ('match_batch_size', 'launch.match --batch_size of the match rows.')):
    flags.DEFINE_integer(name, getattr(d, name), help_text, flag_values=flag_values)
  flags.DEFINE_enum('xla_cpu_convs', d.xla_cpu_convs, list(perf.CPU_CONVS),
                    "CPU convolution runtime: 'eigen' (XLA's own; measured "
                    "faster here), 'ynn' (YNNPACK, jaxlib's default) or 'asis' "
                    '(leave XLA_FLAGS alone). Applied before the backend starts.',
                    flag_values=flag_values)
  flags.DEFINE_string('out', d.out, 'JSON file for the results (default: none).',
                      flag_values=flag_values)
  cli.define_help_flags()


def main(argv, flag_values=FLAGS) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    opts = options(**{f.name: flag_values[f.name].value
                      for f in dataclasses.fields(Options)})
  except ValueError as e:
    sys.exit(f'launch.bench: error: {e}')
  run(opts)


if __name__ == '__main__':
  define_flags()
  app.run(main)
