"""Timing, XLA cost and memory of compiled executables; the machine description.

The one home of the timing helpers, shared by every benchmark (launch/bench/*,
launch/accelerator_check.py).
"""
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax

from rrl_jax import xla_cpu


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int) -> List[float]:
  """Seconds per call of fn() (which must return something blockable)."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return times


def summarize(times: Sequence[float]) -> Dict[str, float]:
  med = statistics.median(times)
  return dict(median_s=med, min_s=min(times), max_s=max(times),
              spread=(max(times) - min(times)) / med if med else 0.0,
              repeats=len(times), times_s=list(times))


def cost_flops(compiled) -> Optional[float]:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost:
    return None
  flops = cost.get('flops')
  return float(flops) if flops is not None and flops > 0 else None


def executable_bytes(compiled) -> Optional[int]:
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  fields = ('argument_size_in_bytes', 'output_size_in_bytes',
            'temp_size_in_bytes', 'generated_code_size_in_bytes')
  total = 0
  for f in fields:
    total += int(getattr(m, f, 0) or 0)
  alias = int(getattr(m, 'alias_size_in_bytes', 0) or 0)
  return total - alias


def device_peak_bytes(devices) -> Optional[int]:
  peaks = []
  for d in devices:
    try:
      stats = d.memory_stats()
    except Exception:  # pylint: disable=broad-except
      stats = None
    if stats and 'peak_bytes_in_use' in stats:
      peaks.append(int(stats['peak_bytes_in_use']))
  return max(peaks) if peaks else None


def rss_peak_bytes() -> int:
  kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(kb) * (1 if sys.platform == 'darwin' else 1024)


def load_average() -> Optional[List[float]]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_info() -> Dict[str, Any]:
  import jaxlib  # pylint: disable=g-import-not-at-top
  devs = jax.devices()
  return dict(
      jax=jax.__version__, jaxlib=getattr(jaxlib, '__version__', '?'),
      python=platform.python_version(), backend=jax.default_backend(),
      device_kind=devs[0].device_kind, num_devices=len(devs),
      cpu=cpu_model(), cpu_count=os.cpu_count(), load_average=load_average(),
      xla_flags=os.environ.get('XLA_FLAGS', ''),
      huge_page_malloc=xla_cpu.huge_page_malloc_state())


def measure_compiled(lowered_fn, call, batch: int, args, devices,
                     extra: Dict[str, Any]) -> Dict[str, Any]:
  """Compiles (timed), runs warm-up + repeats, returns a result row."""
  start = time.perf_counter()
  compiled = lowered_fn()
  compile_s = time.perf_counter() - start
  times = time_calls(lambda: call(compiled), args.repeats, args.warmup)
  row = dict(extra)
  row.update(summarize(times))
  flops = cost_flops(compiled)
  if flops:  # SPMD executables report the cost of one device's shard.
    flops *= max(1, int(extra.get('num_devices', 1)))
  row.update(
      batch=batch, compile_s=compile_s,
      pairs_per_s=batch / row['median_s'],
      flops_per_pair=flops / batch if flops else None,
      achieved_flops=flops / row['median_s'] if flops else None,
      executable_bytes=executable_bytes(compiled),
      device_peak_bytes=device_peak_bytes(devices),
      rss_peak_bytes=rss_peak_bytes())
  return row
