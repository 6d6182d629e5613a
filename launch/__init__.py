"""Command-line programs, run as `python -m launch.NAME` (README).

Run so, a program first restarts itself with glibc's huge-page malloc when that
helps (rrl_jax/xla_cpu.py: measured 0.74x the CPU training step's time). This
runs before the program's own imports, so the restart costs milliseconds;
importing launch modules from elsewhere (tests, notebooks) changes nothing.
"""
import sys

from rrl_jax import xla_cpu


def _main_module(argv) -> str:
  """'launch.main' for `python [options] -m launch.main ...`, else ''."""
  return argv[argv.index('-m') + 1] if '-m' in argv[:-1] else ''


if _main_module(sys.orig_argv).startswith('launch.'):
  xla_cpu.restart_with_huge_page_malloc()
