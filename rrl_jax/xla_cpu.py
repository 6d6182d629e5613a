"""XLA:CPU settings measured by launch.bench (docs/benchmarks.md), applied by every entry point.

XLA:CPU in jaxlib 0.10 / 0.12 sends convolutions to YNNPACK by default
("__ynn_fusion" in the optimised HLO). On the 2-core AMD EPYC Zen 4 CI machine
XLA's own Eigen convolutions ran the RRL-Net training step in 0.80-0.85x the
time (interleaved A/B in one process, batch 64, float32) and inference about
0.95x; `cpu_conv_flags('eigen')` selects them. XLA reads XLA_FLAGS when the
backend starts, so call `apply_xla_flags` before the first jax.devices() /
jit call of the process (importing jax is fine). The same choice can be made
per executable: `jitted.lower(...).compile(compiler_options=
compile_options('eigen'))`.

Huge pages for malloc: XLA:CPU mallocs each convolution's Eigen packing
buffers (38-302 MB at batch 64) and frees them right after; glibc serves such
sizes with fresh mmaps, so every training step faults its ~1.6 GB back in 4 KiB
pages (~416k minor faults, 0.6-1.4 s of system time per step on the CI machine).
glibc >= 2.35 advises transparent huge pages for those mmaps when started with
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (~1,500 faults per step); it reads the tunable
only at process start, so `restart_with_huge_page_malloc()` re-executes the
program once with it set. `python -m launch.NAME` does so before any import
(launch/__init__.py). Setting glibc.malloc.hugetlb yourself (0 to opt out)
disables the restart.
"""
import os
import platform
import sys
import warnings
from typing import Dict, List, Optional

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


_HUGETLB = 'glibc.malloc.hugetlb'
_THP_MODE = '/sys/kernel/mm/transparent_hugepage/enabled'


def _tunables(environ) -> Dict[str, str]:
  items = (t.split('=', 1) for t in environ.get('GLIBC_TUNABLES', '').split(':') if '=' in t)
  return dict(items)


def huge_page_malloc_environ(environ, value: Optional[str]) -> Dict[str, str]:
  """A copy of environ with glibc.malloc.hugetlb=value in GLIBC_TUNABLES (None: removed).

  Other tunables are kept in their order.
  """
  env = dict(environ)
  tunables = [t for t in env.pop('GLIBC_TUNABLES', '').split(':')
              if t and t.split('=', 1)[0] != _HUGETLB]
  if value is not None:
    tunables.append(f'{_HUGETLB}={value}')
  if tunables:
    env['GLIBC_TUNABLES'] = ':'.join(tunables)
  return env


def huge_page_malloc_blocker(environ=None, thp_mode_path: str = _THP_MODE) -> Optional[str]:
  """Why a restart with glibc.malloc.hugetlb=1 would not help; None if it would."""
  environ = os.environ if environ is None else environ
  value = _tunables(environ).get(_HUGETLB)
  if value is not None:
    return f'{_HUGETLB}={value} already set in GLIBC_TUNABLES'
  if not sys.platform.startswith('linux'):
    return f'not Linux ({sys.platform})'
  lib, version = platform.libc_ver()
  try:
    recent = tuple(int(v) for v in version.split('.')[:2]) >= (2, 35)
  except ValueError:
    recent = False
  if lib != 'glibc' or not recent:
    return f'needs glibc >= 2.35, this is {lib or "an unknown libc"} {version}'.strip()
  try:
    with open(thp_mode_path) as f:
      mode = f.read()
  except OSError:
    return f'no transparent huge pages ({thp_mode_path} unreadable)'
  if '[madvise]' not in mode and '[always]' not in mode:
    return f'transparent huge pages are off ({mode.strip()})'
  return None


def huge_page_malloc_state(environ=None) -> str:
  """'on' when this process started with glibc.malloc.hugetlb >= 1, else 'off: why'."""
  environ = os.environ if environ is None else environ
  value = _tunables(environ).get(_HUGETLB)
  if value is not None:
    return 'on' if value not in ('', '0') else f'off: {_HUGETLB}={value}'
  return f'off: {huge_page_malloc_blocker(environ) or "not restarted with it"}'


def restart_with_huge_page_malloc() -> None:
  """Re-executes this program (sys.orig_argv) with glibc.malloc.hugetlb=1 if that helps.

  Returns if it would not help. Call it before anything else (imports
  included): the restart repeats what ran before it.
  """
  if huge_page_malloc_blocker() is not None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:],
              huge_page_malloc_environ(os.environ, '1'))
  except OSError as e:  # Keep running as is: slower, not wrong.
    warnings.warn(f'Could not restart with {_HUGETLB}=1 ({e}); continuing without.')
