"""Deploy rows of launch.bench: the BatchNorm-folded scorer and launch.match end to end.

folded  pairs/s of the BatchNorm-folded scorer (rrl_jax.evaluation.deploy) and of the
        unfolded MLPP scorer, compiled side by side and timed alternately
        (unfolded, folded, unfolded, ...) so machine noise hits both alike.
match   end to end, what users run: `python -m launch.match` on a pack of
        --match_pairs random uint8 pairs, wall time of the whole process
        (interpreter start, imports, load, compile, scoring, writing), once from
        a checkpoint and once from an exported scorer (launch.export; its export
        time is reported as export_s, not counted).
"""
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import jax
import numpy as np

from launch.bench import timing
from launch.bench.workloads import (build_model, init_variables, make_mesh,
                                    random_patches, replicate, shard_batch)
from rrl_jax import pruning
from rrl_jax.evaluation import deploy as deploy_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench_folded(args, dtype: str, which: str, batch: int) -> Dict[str, Any]:
  model = build_model(args, dtype)
  mesh = make_mesh(which)
  if batch % mesh.size:
    return None
  pruned = pruning.inference_variables(init_variables(model), model)
  folded, report = deploy_lib.deploy_variables(model, pruned)
  xa, xb = shard_batch(mesh, *random_patches(batch, model.patch_size,
                                                          args.seed))
  fn = jax.jit(lambda v, a, b: pruning.match_logit(model, v, a, b))
  compiled, compile_s = {}, {}
  trees = {'unfolded': replicate(mesh, pruned),
           'folded': replicate(mesh, folded)}
  for name, tree in trees.items():
    start = time.perf_counter()
    compiled[name] = fn.lower(tree, xa, xb).compile()
    compile_s[name] = time.perf_counter() - start
  times = {name: [] for name in trees}
  for i in range(args.warmup + args.repeats):
    for name in trees:
      start = time.perf_counter()
      jax.block_until_ready(compiled[name](trees[name], xa, xb))
      if i >= args.warmup:
        times[name].append(time.perf_counter() - start)
  row = dict(part='folded', dtype=dtype, devices=which, num_devices=mesh.size,
             batch=batch, params=pruning.count_parameters(folded['params']),
             batch_norms_folded=len(report.folded), compile_s=compile_s['folded'])
  row.update(timing.summarize(times['folded']))
  unfolded = timing.summarize(times['unfolded'])
  flops = timing.cost_flops(compiled['folded'])
  if flops:
    flops *= mesh.size
  row.update(pairs_per_s=batch / row['median_s'],
             unfolded_pairs_per_s=batch / unfolded['median_s'],
             unfolded_median_s=unfolded['median_s'],
             unfolded_times_s=unfolded['times_s'],
             fold_speedup=unfolded['median_s'] / row['median_s'],
             flops_per_pair=flops / batch if flops else None,
             achieved_flops=flops / row['median_s'] if flops else None,
             rss_peak_bytes=timing.rss_peak_bytes())
  return row


def _timed(cmd: List[str]) -> float:
  start = time.perf_counter()
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if result.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed: {result.stderr.strip()[-500:]}')
  return seconds


def bench_match(args) -> List[Dict[str, Any]]:
  from rrl_jax import checkpoint_format  # pylint: disable=g-import-not-at-top
  from rrl_jax.models import model_config  # pylint: disable=g-import-not-at-top
  model = build_model(args, 'float32')
  n = args.match_pairs
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    pack = os.path.join(tmp, 'pack.npy')
    np.save(pack, np.random.default_rng(args.seed).integers(
        0, 256, (n, 2, 64, 64), np.uint8))
    ckpt = os.path.join(tmp, 'ckpt')
    variables = init_variables(model, args.seed)
    checkpoint_format.save_variables(ckpt, {'params': variables['params'],
                                     'batch_stats': variables['batch_stats']},
                              {'model': model_config(model), 'source': 'bench'})
    artifact = os.path.join(tmp, 'rrl.jaxexport')
    export_s = _timed([sys.executable, '-m', 'launch.export', f'--checkpoint={ckpt}',
                       f'--out={artifact}', '--platforms=cpu,cuda'])
    for source, flag in (('checkpoint', f'--checkpoint={ckpt}'),
                         ('export', f'--export={artifact}')):
      out = os.path.join(tmp, f'scores_{source}.npy')
      wall = _timed([sys.executable, '-m', 'launch.match', flag, f'--pairs={pack}',
                     f'--out={out}', f'--batch_size={args.match_batch_size}'])
      row = dict(part='match', dtype='float32', devices='all',
                 num_devices=len(jax.devices()), batch=args.match_batch_size,
                 source=source, pairs=n, median_s=wall, repeats=1,
                 pairs_per_s=n / wall)
      if source == 'export':
        row['export_s'] = export_s
      rows.append(row)
  return rows


def fold_summary(rows) -> List[str]:
  out = []
  for r in rows:
    if r['part'] == 'folded':
      out.append(f"folded {r['dtype']} {r['devices']} batch {r['batch']}: "
                 f"{r['pairs_per_s']:.1f} vs unfolded {r['unfolded_pairs_per_s']:.1f} "
                 f"pairs/s (x{r['fold_speedup']:.2f}, same run, alternating)")
    elif r['part'] == 'match':
      extra = f", export took {r['export_s']:.1f} s" if 'export_s' in r else ''
      out.append(f"launch.match --{r['source']} on {r['pairs']} pairs: "
                 f"{r['median_s']:.1f} s end to end ({r['pairs_per_s']:.0f} "
                 f"pairs/s, startup included{extra})")
  return out
