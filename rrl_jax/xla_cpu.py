"""XLA:CPU settings measured by launch/bench.py (README, "Benchmarks"), applied by every entry point.

XLA:CPU in jaxlib 0.10 / 0.12 sends convolutions to YNNPACK by default
("__ynn_fusion" in the optimised HLO). On the 2-core AMD EPYC Zen 4 CI machine
XLA's own Eigen convolutions ran the RRL-Net training step in 0.80-0.85x the
time (interleaved A/B in one process, batch 64, float32) and inference about
0.95x; `cpu_conv_flags('eigen')` selects them. XLA reads XLA_FLAGS when the
backend starts, so call `apply_xla_flags` before the first jax.devices() /
jit call of the process (importing jax is fine). The same choice can be made
per executable: `jitted.lower(...).compile(compiler_options=
compile_options('eigen'))`.
"""
import os
import warnings
from typing import Dict, List

# Fusion types YNNPACK may take over; dropping "individual_convolution" leaves
# convolutions to XLA's Eigen runtime. Exists in jaxlib 0.10.2 and 0.12.
_YNN_FLAG = 'xla_cpu_experimental_ynn_fusion_type'

CPU_CONVS = ('eigen', 'ynn', 'asis')


def cpu_conv_flags(convs: str = 'eigen') -> List[str]:
  """XLA_FLAGS entries selecting the CPU convolution runtime."""
  if convs not in CPU_CONVS:
    raise ValueError(f'convs must be one of {CPU_CONVS}, got {convs!r}.')
  if convs == 'eigen':
    return [f'--{_YNN_FLAG}=-individual_convolution']
  return []


def compile_options(convs: str = 'eigen') -> Dict[str, str]:
  """The same choice as per-executable compiler_options."""
  if convs == 'eigen':
    return {_YNN_FLAG: 'LIBRARY_FUSION_TYPE_REDUCE'}
  cpu_conv_flags(convs)  # validates
  return {}


def backend_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(getattr(xla_bridge, '_backends', None))
  except Exception:  # pylint: disable=broad-except
    return False


def apply_xla_flags(convs: str = 'eigen') -> str:
  """Appends the flags to XLA_FLAGS unless the user already set that flag.

  Returns the resulting XLA_FLAGS. Warns if a backend already started (the
  flags then only apply to processes started later).
  """
  current = os.environ.get('XLA_FLAGS', '')
  extra = [f for f in cpu_conv_flags(convs) if f.split('=')[0] not in current]
  if extra:
    if backend_started():
      warnings.warn('XLA backend already initialised: XLA_FLAGS '
                    f'{extra} will not affect this process.')
    os.environ['XLA_FLAGS'] = ' '.join([current] + extra).strip()
  return os.environ.get('XLA_FLAGS', '')
