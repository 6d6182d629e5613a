r"""One command for a new accelerator: parity, speed, a short training run, MFU.

  python -m launch.accelerator_check --out_dir=/tmp/acc     # GPU/TPU, < 8 min
  python -m launch.accelerator_check --quick --out_dir=/tmp/acc   # CPU smoke

Steps, in this order, each timed:
  1. the Keras parity tests (tests/test_parity.py, tests/test_train_replay.py)
     with JAX_DEFAULT_MATMUL_PRECISION=highest;
  2. launch.bench rows on one device, bfloat16 and float32: the measured matmul
     peak, the train step (MSE reconstruction) at batch 64, 256 and 1024, MLPP
     inference at 64, 256 and 1024, the BatchNorm-folded scorer at 256;
  3. a training run of configs/scenes.py (500 steps, process wall time);
  4. the same bench rows on all devices (when there are several).
Results go to OUT_DIR/accelerator_check.{json,md}: per row the achieved FLOP/s
(XLA's cost analysis / median time) and its share of the device's bf16 peak
(MFU, from PEAK_BF16 below; devices not listed get none) and of the measured
matmul peak. A time budget guards the 8-minute target: bench rows do not start
after --budget_s (380 s) minus --train_reserve_s (150 s), the training run is
stopped 60 s after --budget_s; what did not run is listed as skipped. Rows run
most-wanted first (train 64 and inference 256 in both dtypes, folded 256, then
the other batch sizes), so a cut drops the least wanted.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from absl import app, flags

from rrl_jax import cli
from rrl_jax import logs

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Dense bf16 peak FLOP/s per JAX device, vendor data sheets (SXM parts for
# NVIDIA; TPU v2/v3 expose each core as a device, so half a chip). Matched as a
# substring of device_kind, first match wins (specific names first).
PEAK_BF16 = (
    ('H100 PCIe', 756e12),
    ('H200', 989e12),
    ('H100', 989e12),
    ('GH200', 989e12),
    ('B200', 2250e12),
    ('A100', 312e12),
    ('L40S', 362e12),
    ('L4', 121e12),
    ('TPU v6 lite', 918e12),  # v6e (Trillium)
    ('TPU v5 lite', 197e12),  # v5e
    ('TPU v5p', 459e12),
    ('TPU v5', 459e12),
    ('TPU v4', 275e12),
    ('TPU v3', 61.5e12),  # per core
    ('TPU v2', 22.5e12),  # per core
)


def peak_bf16(device_kind: str) -> Optional[float]:
  for name, flops in PEAK_BF16:
    if name.lower() in device_kind.lower():
      return flops
  return None


def define_flags() -> None:
  flags.DEFINE_string('out_dir', None, 'Where accelerator_check.{json,md} go.')
  flags.DEFINE_bool('quick', False, 'CPU smoke: reduced widths, tiny batches, '
                    'configs/scenes.py:test for 4 steps.')
  flags.DEFINE_float('budget_s', 380.0, 'Start no new step after this many seconds.')
  flags.DEFINE_float('train_reserve_s', 150.0, 'Seconds of the budget kept for '
                     'the training run (bench rows stop earlier).')
  flags.DEFINE_list('parity_tests', ['tests/test_parity.py', 'tests/test_train_replay.py'],
                    'pytest targets of the parity step (empty: skip).')
  flags.DEFINE_string('parity_k', '', 'pytest -k expression for the parity step.')
  flags.DEFINE_list('train_batch_sizes', None, 'default 64,256,1024 (quick: 4).')
  flags.DEFINE_list('infer_batch_sizes', None, 'default 64,256,1024 (quick: 8).')
  flags.DEFINE_list('dtypes', ['bfloat16', 'float32'], 'Compute dtypes.')
  flags.DEFINE_integer('repeats', None, 'Timed calls per row (default 5; quick 2).')
  flags.DEFINE_string('train_config', None, 'default configs/scenes.py '
                      '(quick: configs/scenes.py:test).')
  flags.DEFINE_integer('train_steps', None, 'default 500 (quick: 4).')
  cli.define_help_flags()


def run_parity(targets: List[str], k: str, timeout: float) -> Dict[str, Any]:
  cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *targets]
  if k:
    cmd += ['-k', k]
  env = dict(os.environ, JAX_DEFAULT_MATMUL_PRECISION='highest')
  start = time.perf_counter()
  try:
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=max(timeout, 1))
  except subprocess.TimeoutExpired:
    return dict(targets=targets, status='timeout', wall_s=time.perf_counter() - start)
  last = (result.stdout.strip().splitlines() or [''])[-1]
  counts = {w: int(n) for n, w in re.findall(r'(\d+) (passed|failed|skipped|error)', last)}
  return dict(targets=targets, k=k, precision='highest', summary=last.strip('= '),
              status='passed' if result.returncode == 0 else 'failed',
              wall_s=time.perf_counter() - start, **counts)


def run_training(config: str, steps: int, timeout: float, workdir: str) -> Dict[str, Any]:
  from configs import default  # pylint: disable=g-import-not-at-top
  cmd = [sys.executable, '-m', 'launch.main', f'--config={config}',
         f'--workdir={workdir}', f'--config.num_train_steps={steps}',
         '--config.eval_every=0', f'--config.checkpoint_every={steps}']
  note = ''
  if not os.path.exists(os.path.expanduser(default.VGG19_DEFAULT)):
    cmd.append('--config.recon_loss=mse')
    note = 'recon_loss=mse: VGG19 weights absent for the perceptual loss'
  start = time.perf_counter()
  try:
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                            timeout=max(timeout, 1))
    status = 'ok' if result.returncode == 0 else 'failed'
    tail = result.stderr.strip().splitlines()[-3:] if result.returncode else []
  except subprocess.TimeoutExpired:
    status, tail = 'timeout', []
  wall = time.perf_counter() - start
  return dict(config=config, steps=steps, status=status, wall_s=wall,
              steps_per_s_incl_startup=steps / wall, note=note, error_tail=tail,
              command=' '.join(cmd[1:]))


def bench_rows(bench_args, which: str, deadline: float) -> List[Dict[str, Any]]:
  from launch.bench import compute, deploy, harness  # pylint: disable=g-import-not-at-top
  rows = []

  def add(kind, fn, *a):
    if time.perf_counter() > deadline:
      rows.append(dict(part=kind, dtype=a[0] if a else '', devices=which,
                       batch=a[-1] if len(a) > 1 else 0, skipped='time budget'))
      return
    row = fn(*a)
    if row is not None:
      rows.append(row)
      print(harness.format_table([row], {}).splitlines()[-1], flush=True)

  train = lambda d, w, n: compute.bench_train(bench_args, d, w, n, True)
  infer = lambda d, w, n: compute.bench_infer(bench_args, d, w, n, full=False)
  folded = lambda d, w, n: deploy.bench_folded(bench_args, d, w, n)
  train_b, infer_b = bench_args.train_batch_sizes, bench_args.infer_batch_sizes
  fold_b = 256 if 256 in infer_b else infer_b[0]
  # Most wanted first, so a budget cut drops the least wanted rows: the
  # workload batches (train 64, inference 256) in both dtypes, then the rest.
  plan = [('train', train, train_b[:1]), ('infer', infer, [fold_b]),
          ('folded', folded, [fold_b]), ('train', train, train_b[1:]),
          ('infer', infer, [b for b in infer_b if b != fold_b])]
  if which == 'one':
    for dtype in bench_args.dtypes:
      add('peak', lambda d: compute.bench_peak(bench_args, d), dtype)
  for kind, fn, batches in plan:
    for b in batches:
      for dtype in bench_args.dtypes:
        add(kind, fn, dtype, which, b)
  return rows


def add_shares(rows, device_kind: str) -> None:
  peak = peak_bf16(device_kind)
  measured = {r['dtype']: r['achieved_flops'] for r in rows
              if r.get('part') == 'peak' and r.get('achieved_flops')}
  for r in rows:
    flops = r.get('achieved_flops')
    if not flops or r.get('part') == 'peak':
      continue
    n = max(1, int(r.get('num_devices', 1)))
    r['mfu_bf16'] = flops / (peak * n) if peak else None
    if measured.get(r['dtype']):
      r['share_of_measured_peak'] = flops / (measured[r['dtype']] * n)


def markdown(result: Dict[str, Any]) -> str:
  m = result['machine']
  lines = [f"# Accelerator check: {m['device_kind']} x{m['num_devices']} "
           f"({m['backend']}), jax {m['jax']}",
           '', f"bf16 peak used for MFU: "
           f"{result['peak_bf16'] / 1e12:.1f} TFLOP/s per device" if result['peak_bf16']
           else 'bf16 peak: device not in the table (no MFU).', '',
           f"Parity ({result['parity'].get('precision', '-')} precision): "
           f"{result['parity'].get('status')} - {result['parity'].get('summary', '')} "
           f"({result['parity'].get('wall_s', 0):.0f} s)", '']
  t = result.get('training') or {}
  if t:
    lines += [f"Training {t['config']}, {t['steps']} steps: {t['status']}, "
              f"{t['wall_s']:.1f} s wall (startup, data and compile included) "
              f"{t.get('note', '')}", '']
  lines += ['| part | dtype | devices | batch | median s | pairs/s | TFLOP/s | MFU bf16 | '
            '% measured peak | compile s |', '|' + '---|' * 10]
  for r in result['rows']:
    if r.get('skipped'):
      lines.append(f"| {r['part']} | {r['dtype']} | {r['devices']} | {r['batch']} | "
                   f"skipped ({r['skipped']}) | | | | | |")
      continue
    f = lambda k, s, scale=1.0: format(r[k] * scale, s) if r.get(k) is not None else '-'
    lines.append(
        f"| {r['part']} | {r['dtype']} | {r.get('devices')} | {r.get('batch')} | "
        f"{f('median_s', '.4f')} | {f('pairs_per_s', '.0f')} | "
        f"{f('achieved_flops', '.2f', 1e-12)} | {f('mfu_bf16', '.1f', 100)}"
        f"{'%' if r.get('mfu_bf16') is not None else ''} | "
        f"{f('share_of_measured_peak', '.1f', 100)} | {f('compile_s', '.1f')} |")
  lines += ['', f"Total wall time: {result['wall_s']:.0f} s."]
  return '\n'.join(lines) + '\n'


def run(out_dir: str, quick: bool = False, budget_s: float = 380.0,
        parity_tests=(), parity_k: str = '', train_batch_sizes=None,
        infer_batch_sizes=None, dtypes=('bfloat16', 'float32'), repeats=None,
        train_config=None, train_steps=None, train_reserve_s: float = 150.0
        ) -> Dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  from launch.bench import harness  # pylint: disable=g-import-not-at-top
  from launch.bench import timing  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  deadline = start + budget_s
  train_b = [int(b) for b in (train_batch_sizes or ([4] if quick else [64, 256, 1024]))]
  infer_b = [int(b) for b in (infer_batch_sizes or ([8] if quick else [64, 256, 1024]))]
  bench_args = harness.options(
      recon_loss='mse', repeats=repeats or (2 if quick else 5), dtypes=dtypes,
      train_batch_sizes=train_b, infer_batch_sizes=infer_b,
      peak_n=256 if quick else 8192,
      **(dict(widths=(4, 8, 8, 16, 16), head_hidden=(16, 8)) if quick else {}))
  info = timing.machine_info()
  print('machine:', json.dumps(info), flush=True)
  parity = (run_parity(list(parity_tests), parity_k, deadline - time.perf_counter())
            if parity_tests else {'status': 'skipped'})
  print('parity:', json.dumps(parity), flush=True)
  rows = bench_rows(bench_args, 'one', deadline - train_reserve_s)
  config = train_config or ('configs/scenes.py:test' if quick else 'configs/scenes.py')
  steps = train_steps or (4 if quick else 500)
  remaining = deadline - time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:  # checkpoints not kept
    training = (run_training(config, steps, remaining + 60, os.path.join(workdir, 'run'))
                if remaining > 0 else {'config': config, 'steps': steps,
                                       'status': 'skipped (time budget)', 'wall_s': 0})
  print('training:', json.dumps(training), flush=True)
  if len(jax.devices()) > 1:
    rows += bench_rows(bench_args, 'all', deadline)
  add_shares(rows, info['device_kind'])
  result = dict(machine=info, quick=quick, budget_s=budget_s,
                peak_bf16=peak_bf16(info['device_kind']), parity=parity,
                training=training, rows=rows, bench_args=dataclasses.asdict(bench_args),
                wall_s=time.perf_counter() - start)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'accelerator_check.json'), 'w') as f:
    json.dump(result, f, indent=1, default=str)
  with open(os.path.join(out_dir, 'accelerator_check.md'), 'w') as f:
    f.write(markdown(result))
  return result


def main(argv):
  del argv
  from rrl_jax import xla_cpu  # pylint: disable=g-import-not-at-top
  xla_cpu.apply_xla_flags()  # Before the backend starts, as launch.bench.
  logs.quiet_logging()
  if not FLAGS.out_dir:
    sys.exit('launch.accelerator_check: error: --out_dir is required.')
  result = run(FLAGS.out_dir, FLAGS.quick, FLAGS.budget_s, FLAGS.parity_tests,
               FLAGS.parity_k, FLAGS.train_batch_sizes, FLAGS.infer_batch_sizes,
               FLAGS.dtypes, FLAGS.repeats, FLAGS.train_config, FLAGS.train_steps,
               FLAGS.train_reserve_s)
  print(markdown(result))
  print(f'wrote {FLAGS.out_dir}/accelerator_check.json and .md')


if __name__ == '__main__':
  define_flags()
  app.run(main)
