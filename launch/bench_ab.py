"""A/B timing of the real train step with module switches flipped (README "Benchmarks").

  python -m launch.bench_ab --variants='bn=rrl_jax.models.layers.BN_CUSTOM_VJP' --rounds=15

Compiles rrl_jax.training.step.make_train_step's step once per variant in one
process: the baseline A with every listed switch False, and each variant
NAME=SWITCH[+SWITCH...] with its switches True (switches are read while
tracing, so each executable keeps its own choice). Every round calls A and
every variant once on the same batch, in a rotating order; each variant's
figure is the median over rounds of its time / A's time in the same round, so
load from other processes cancels to first order. Also prints each
executable's XLA memory analysis (arguments + outputs + temporaries - aliases).
"""
import contextlib
import importlib
import statistics
import sys
import time
from typing import Dict, List, Optional

from absl import app
from absl import flags

from rrl_jax import cli
from rrl_jax import xla_cpu

FLAGS = flags.FLAGS


def _switch(path):
  module, name = path.rsplit('.', 1)
  mod = importlib.import_module(module)
  if not isinstance(getattr(mod, name, None), bool):
    raise ValueError(f'--variants: {path} is not a boolean module switch.')
  return mod, name


@contextlib.contextmanager
def switches(paths, value):
  saved = []
  for p in paths:
    mod, name = _switch(p)
    saved.append((mod, name, getattr(mod, name)))
    setattr(mod, name, value)
  try:
    yield
  finally:
    for mod, name, old in saved:
      setattr(mod, name, old)


def memory_bytes(compiled):
  m = compiled.memory_analysis()
  return (m.argument_size_in_bytes + m.output_size_in_bytes
          + m.temp_size_in_bytes - m.alias_size_in_bytes), m.temp_size_in_bytes


def setup(config, batch):
  """(state, step, batch arrays, loss weights) of the real training step."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import losses
  from rrl_jax.training import optim
  from rrl_jax.training import step as ts  # pylint: disable=g-import-not-at-top
  mesh = ts.make_mesh(1)
  model = ts.make_model(config)
  tx = optim.make_optimizer(config.optimizer)
  recon = losses.make_recon_loss(config.recon_loss)
  state = ts.init_state(model, tx, config, mesh)
  make_step = lambda: ts.make_train_step(model, tx, config, mesh,
                                         jax.random.key(0), recon, lambda s: 2e-4)
  rng = np.random.default_rng(0)
  arrays = {'xa': rng.integers(0, 256, (batch, 64, 64, 1), dtype=np.uint8),
            'xb': rng.integers(0, 256, (batch, 64, 64, 1), dtype=np.uint8),
            'label': rng.integers(0, 2, batch).astype(np.int32)}
  return state, make_step, ts.global_batch(arrays, mesh), ts.loss_weights(config, mesh)


def parse_variants(items) -> Dict[str, List[str]]:
  """['NAME=mod.SWITCH+mod.OTHER', ...] -> {NAME: [switch paths]}; ValueError if bad."""
  variants = {}
  for item in filter(None, items):
    if '=' not in item:
      raise ValueError(f'--variants: {item!r} is not NAME=SWITCH[+SWITCH].')
    name, switch_list = item.split('=', 1)
    variants[name] = switch_list.split('+')
    for f in variants[name]:
      _switch(f)
  return variants


def run(variants: Dict[str, List[str]], rounds: int = 15, warmup: int = 2,
        batch: int = 64, augment: bool = True, recon_loss: str = 'mse',
        dump_hlo: Optional[str] = None) -> Dict[str, List[float]]:
  """Times A and every variant (parse_variants' output); returns seconds per round."""
  xla_cpu.apply_xla_flags('eigen')
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  all_flags = sorted({f for fl in variants.values() for f in fl})
  config = default.get_config()
  config.batch_size = batch
  config.recon_loss = recon_loss
  config.augment.enabled = bool(augment)
  state, make_step, arrays, weights = setup(config, batch)
  runs = {}
  for name, on in [('A', [])] + list(variants.items()):
    with switches(all_flags, False), switches(on, True):
      start = time.perf_counter()
      compiled = make_step().lower(state, arrays, weights).compile()
    total, temp = memory_bytes(compiled)
    print(f'{name}: compiled in {time.perf_counter() - start:.0f}s; memory '
          f'{total / 2**20:.1f} MiB (temp {temp / 2**20:.1f} MiB)', flush=True)
    if dump_hlo:
      with open(f'{dump_hlo}_{name}.hlo', 'w') as f:
        f.write(compiled.as_text())
    runs[name] = dict(compiled=compiled, state=jax.tree.map(jnp.copy, state))

  def call(r):
    start = time.perf_counter()
    r['state'], metrics = r['compiled'](r['state'], arrays, weights)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  for _ in range(warmup):
    for r in runs.values():
      call(r)
  names = list(runs)
  times = {k: [] for k in names}
  for i in range(rounds):
    # Rotate the order so a drift in load does not favour one position.
    for k in names[i % len(names):] + names[:i % len(names)]:
      times[k].append(call(runs[k]))
  print(f'{rounds} rounds; A median {statistics.median(times["A"]):.3f}s')
  for k in names[1:]:
    ratios = [b / a for a, b in zip(times['A'], times[k])]
    q = statistics.quantiles(ratios, n=4)
    print(f'{k} {variants[k]}: median {statistics.median(times[k]):.3f}s; '
          f'ratio to A median {statistics.median(ratios):.3f} '
          f'(IQR {q[0]:.3f}-{q[2]:.3f}, min {min(ratios):.3f}, max {max(ratios):.3f})',
          flush=True)
  return times


def define_flags() -> None:
  flags.DEFINE_list('variants', None, 'comma-separated NAME=module.SWITCH[+module.SWITCH]')
  flags.DEFINE_integer('rounds', 15, 'Rounds (each calls A and every variant once).')
  flags.DEFINE_integer('warmup', 2, 'Untimed rounds first.')
  flags.DEFINE_integer('batch', 64, 'Pairs per step.')
  flags.DEFINE_integer('augment', 1, '1: on-device augmentation on (as training); 0: off.')
  flags.DEFINE_string('recon_loss', 'mse', 'Reconstruction loss of the step.')
  flags.DEFINE_string('dump_hlo', '', 'prefix: writes PREFIX_NAME.hlo (optimised HLO) '
                      'per variant')
  flags.mark_flag_as_required('variants')
  cli.define_help_flags()


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    variants = parse_variants(FLAGS.variants)
  except (ValueError, ImportError) as e:
    sys.exit(f'launch.bench_ab: error: {e}')
  run(variants, FLAGS.rounds, FLAGS.warmup, FLAGS.batch, bool(FLAGS.augment),
      FLAGS.recon_loss, FLAGS.dump_hlo)


if __name__ == '__main__':
  define_flags()
  app.run(main)
