"""A/B timing of the real train step under config overrides (docs/benchmarks.md).

  python -m launch.bench --ab='bf16=dtype="bfloat16"' --ab_rounds=15
  python -m launch.bench --ab='noaug=augment.enabled=false+recon_loss="mse"'

Baseline A is the step training runs with configs/default.py:<--model> (with
--widths/--head_hidden, --recon_loss, the first of --train_batch_sizes); each
variant NAME=FIELD=VALUE[+FIELD=VALUE...] is A's config with those fields set
(VALUE is JSON, else a string). Every step is compiled once in one process
(rrl_jax.training.step.make_train_step). Every round calls A and every variant
once on the same batch, in a rotating order; each variant's figure is the
median over rounds of its time / A's time in the same round, so load from
other processes cancels to first order. Also prints each executable's XLA
memory analysis (arguments + outputs + temporaries - aliases).
"""
import json
import statistics
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from launch.bench.workloads import architecture_overrides

Override = Tuple[str, Any]


def _value(text: str) -> Any:
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def parse_variants(items) -> Dict[str, List[Override]]:
  """['NAME=FIELD=VALUE+FIELD=VALUE', ...] -> {NAME: [(field, value)]}; ValueError if bad."""
  variants = {}
  for item in filter(None, items):
    name, sep, overrides = item.partition('=')
    if not sep or not name or name == 'A':
      raise ValueError(f'--ab: {item!r} is not NAME=FIELD=VALUE[+FIELD=VALUE] '
                       '(NAME other than A, the baseline).')
    variants[name] = []
    for override in overrides.split('+'):
      field, sep, value = override.partition('=')
      if not sep or not field:
        raise ValueError(f'--ab: {override!r} in {item!r} is not FIELD=VALUE.')
      variants[name].append((field, _value(value)))
  return variants


def apply_overrides(config, overrides: List[Override]):
  """A copy of `config` with each (dotted field, value) set; ValueError names a bad one."""
  config = config.copy_and_resolve_references()
  for field, value in overrides:
    *parents, leaf = field.split('.')
    node = config
    for key in parents:
      if key not in node or not hasattr(node[key], 'keys'):
        raise ValueError(f'--ab: {field}: no config group {key!r}.')
      node = node[key]
    if leaf not in node:
      raise ValueError(f'--ab: {field}: no such config field; fields here: '
                       f'{", ".join(sorted(node.keys()))}.')
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ValueError(f'--ab: {field}={value!r}: {e}') from None
  return config


def base_config(args):
  """A's config: configs/default.py:<--model> as the train rows of launch.bench use it."""
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config(args.model)
  config.model.update(architecture_overrides(args))
  config.batch_size = args.train_batch_sizes[0]
  config.recon_loss = args.recon_loss
  return config


def setup(config):
  """(state, jitted step, batch arrays, loss weights) of the real training step."""
  from rrl_jax.training import losses  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import optim  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import step as ts  # pylint: disable=g-import-not-at-top
  mesh = ts.make_mesh(1)
  model = ts.make_model(config)
  tx = optim.make_optimizer(config.optimizer)
  state = ts.init_state(model, tx, config, mesh)
  step = ts.make_train_step(model, tx, config, mesh, jax.random.key(0),
                            losses.make_recon_loss(config.recon_loss), lambda s: 2e-4)
  rng = np.random.default_rng(0)
  batch, patch = config.batch_size, model.patch_size
  arrays = {'xa': rng.integers(0, 256, (batch, patch, patch, 1), dtype=np.uint8),
            'xb': rng.integers(0, 256, (batch, patch, patch, 1), dtype=np.uint8),
            'label': rng.integers(0, 2, batch).astype(np.int32)}
  return state, step, ts.global_batch(arrays, mesh), ts.loss_weights(config, mesh)


def memory_bytes(compiled):
  m = compiled.memory_analysis()
  return (m.argument_size_in_bytes + m.output_size_in_bytes
          + m.temp_size_in_bytes - m.alias_size_in_bytes), m.temp_size_in_bytes


def run(args, variants: Dict[str, List[Override]], rounds: int,
        dump_hlo: Optional[str] = None) -> Dict[str, List[float]]:
  """Times A and every variant (parse_variants' output); returns seconds per round."""
  base = base_config(args)
  configs = {'A': base}
  configs.update({name: apply_overrides(base, o) for name, o in variants.items()})
  runs = {}
  for name, config in configs.items():
    state, step, arrays, weights = setup(config)
    start = time.perf_counter()
    compiled = step.lower(state, arrays, weights).compile()
    total, temp = memory_bytes(compiled)
    print(f'{name}: compiled in {time.perf_counter() - start:.0f}s; memory '
          f'{total / 2**20:.1f} MiB (temp {temp / 2**20:.1f} MiB)', flush=True)
    if dump_hlo:
      with open(f'{dump_hlo}_{name}.hlo', 'w') as f:
        f.write(compiled.as_text())
    runs[name] = dict(compiled=compiled, state=jax.tree.map(jnp.copy, state),
                      arrays=arrays, weights=weights)

  def call(r):
    start = time.perf_counter()
    r['state'], metrics = r['compiled'](r['state'], r['arrays'], r['weights'])
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  for _ in range(args.warmup):
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
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(f'{k} {variants[k]}: median {statistics.median(times[k]):.3f}s; '
          f'ratio to A median {statistics.median(ratios):.3f} '
          f'(IQR {q[0]:.3f}-{q[2]:.3f}, min {min(ratios):.3f}, max {max(ratios):.3f})',
          flush=True)
  return times
