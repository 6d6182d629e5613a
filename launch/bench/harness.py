"""launch.bench: runs the selected parts, prints the table, writes the JSON (see __main__.py)."""
import dataclasses
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

from absl import app
from absl import flags
import jax

from launch.bench import ab, compute, deploy, timing
from rrl_jax import cli
from rrl_jax import xla_cpu as perf
from rrl_jax.models import variants

FLAGS = flags.FLAGS
PARTS = ('peak', 'train', 'trainpure', 'infer', 'full', 'pipeline', 'folded',
         'match')


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
  ab: Tuple[str, ...] = ()
  ab_rounds: int = 15
  dump_hlo: str = ''


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
  ab.parse_variants(opts.ab)
  if opts.full_batch_sizes is None:
    opts = dataclasses.replace(opts, full_batch_sizes=opts.infer_batch_sizes[:1])
  return opts


def start(args: Options) -> Dict[str, Any]:
  """Applies --xla_cpu_convs before the backend starts; prints and returns the machine."""
  started = perf.backend_started()
  if args.xla_cpu_convs != 'asis':
    perf.apply_xla_flags(args.xla_cpu_convs)
  info = timing.machine_info()
  # True: flags set after the backend started (e.g. in tests) do not apply.
  info['xla_cpu_convs'] = args.xla_cpu_convs
  info['flags_applied'] = not started
  print('machine:', json.dumps(info), flush=True)
  return info


def run(args: Options) -> Dict[str, Any]:
  """Measures every selected part; prints the table; writes args.out (JSON)."""
  info = start(args)
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
      row = compute.bench_peak(args, dtype)
      peaks[dtype] = row['achieved_flops']
      add(row)
  for dtype in args.dtypes:
    for which in which_devices:
      for part, augment in (('train', True), ('trainpure', False)):
        if part in args.parts:
          for b in args.train_batch_sizes:
            add(compute.bench_train(args, dtype, which, b, augment))
      if 'infer' in args.parts:
        for b in args.infer_batch_sizes:
          add(compute.bench_infer(args, dtype, which, b, full=False))
      if 'full' in args.parts:
        for b in args.full_batch_sizes:
          add(compute.bench_infer(args, dtype, which, b, full=True))
      if 'folded' in args.parts:
        for b in args.infer_batch_sizes:
          add(deploy.bench_folded(args, dtype, which, b))
  if 'pipeline' in args.parts:
    add(compute.bench_pipeline(args))
  if 'match' in args.parts:
    for row in deploy.bench_match(args):
      add(row)
  info['load_average_end'] = timing.load_average()
  print()
  print(f"{info['cpu']} ({info['backend']}, {info['num_devices']} device(s), "
        f"{info['cpu_count']} CPUs), jax {info['jax']}, Python {info['python']}, "
        f"load {info['load_average']} -> {info['load_average_end']}, "
        f"huge-page malloc {info['huge_page_malloc']}")
  print(format_table(rows, peaks))
  for line in mlpp_summary(rows):
    print(line)
  if {'folded', 'match'} & set(args.parts):
    for line in deploy.fold_summary(rows):
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
  flags.DEFINE_list('ab', list(d.ab), 'Instead of the parts: A/B timing of the train '
                    'step, NAME=FIELD=VALUE[+FIELD=VALUE] config overrides per '
                    'variant (launch/bench/ab.py).', flag_values=flag_values)
  flags.DEFINE_integer('ab_rounds', d.ab_rounds, 'Rounds of --ab (each calls A '
                       'and every variant once).', flag_values=flag_values)
  flags.DEFINE_string('dump_hlo', d.dump_hlo, 'With --ab: writes PREFIX_NAME.hlo '
                      '(optimised HLO) per variant.', flag_values=flag_values)
  cli.define_help_flags()


def main(argv, flag_values=FLAGS) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    opts = options(**{f.name: flag_values[f.name].value
                      for f in dataclasses.fields(Options)})
  except ValueError as e:
    sys.exit(f'launch.bench: error: {e}')
  if opts.ab:
    start(opts)
    ab.run(opts, ab.parse_variants(opts.ab), opts.ab_rounds, opts.dump_hlo)
  else:
    run(opts)
