r"""Trains and evaluates RRL-Net.

  python -m launch.main --config=configs/demo.py --workdir=/tmp/rrl_demo
  python -m launch.main --config=configs/vis_nir.py --workdir=DIR \
      --config.batch_size=128 --config.optimizer.learning_rate=4e-4

Multi-host: run the same command on every host; Slurm and TPU pods are
detected, or pass --coordinator_address/--num_processes/--process_id.

Preemption: on SIGTERM or SIGINT the run finishes its step, saves a checkpoint,
prints "preempted at step N, checkpoint saved; rerun the same command to
resume" and exits with code 75 (EX_TEMPFAIL); the same command resumes.
"""
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

from rrl_jax import cli
from rrl_jax import distributed
from rrl_jax import logs
from rrl_jax import xla_cpu

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training config file (e.g. configs/demo.py[:test]); set any '
    'field with --config.FIELD=VALUE (e.g. --config.optimizer.learning_rate=4e-4); '
    'list every field with --show_config.', lock_config=True)
_SHOW_CONFIG = flags.DEFINE_bool('show_config', False, 'Print the resolved config '
                                 '(all --config.* fields) and exit.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, '
                               'logs, results); an existing run resumes.')
_ALLOW_CHANGE = flags.DEFINE_bool('allow_config_change', False, 'Continue a run '
                                  'in --workdir although its config differs.')
_RESTART = flags.DEFINE_bool('restart_from_scratch', False, 'Train from step 0 '
                             'in a --workdir whose previous run has no usable '
                             'checkpoint (its files are moved aside first).')
_COORD = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NPROC = flags.DEFINE_integer('num_processes', None, 'Total number of processes.')
_PID = flags.DEFINE_integer('process_id', None, 'Index of this process.')
_CPU_COLL = flags.DEFINE_enum('cpu_collectives', None, ['gloo', 'mpi'],
                              'Cross-process collectives on CPU.')
flags.mark_flags_as_required(['config'])
flags.register_multi_flags_validator(
    ['workdir', 'show_config'], lambda f: bool(f['workdir'] or f['show_config']),
    message='--workdir is required (run directory; not needed with --show_config).')
cli.define_help_flags()


def _unknown_override(argv):
  """'--config.a.b: ...' for the first --config.* override naming no field."""
  path = None
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
  if not path:
    return None
  parser = config_flags.config_flags.ConfigFileFlagParser('config', lock_config=False)
  config = parser.parse(path)
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    name = arg[2:].split('=', 1)[0]
    node, prefix = config, 'config'
    for key in name.split('.')[1:]:
      if not hasattr(node, 'keys'):
        return (f'--{name}: {prefix} is a single {type(node).__name__} value, '
                'not a group of fields.')
      if key not in node.keys():
        return (f'--{name}: unknown key {key!r} in {prefix} (from {path}); valid '
                f'keys of {prefix}: {", ".join(sorted(node.keys()))}.')
      node, prefix = node[key], f'{prefix}.{key}'
  return None


def _parse_flags(argv):
  """absl's parser; an unknown --config.KEY is one line, not a traceback."""
  try:
    return cli.parse_flags(argv)
  except (AttributeError, KeyError):  # What ml_collections raises for one.
    message = _unknown_override(argv)
    if message is None:
      raise
    sys.stderr.write(f'ERROR: {message}\n')
    sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _SHOW_CONFIG.value:
    print('\n'.join(cli.config_lines(_CONFIG.value)))
    return
  logs.quiet_logging(logging.ERROR)  # Our progress bar and lines only.
  xla_cpu.apply_xla_flags()  # Before the backend starts (measured faster).
  distributed.initialize(_COORD.value, _NPROC.value, _PID.value,
                         cpu_collectives=_CPU_COLL.value)
  # pylint: disable=g-import-not-at-top
  from rrl_jax.errors import UserError
  from rrl_jax.training import train
  from rrl_jax.training.preemption import PREEMPTED_EXIT_CODE, Preempted
  # pylint: enable=g-import-not-at-top
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             allow_config_change=_ALLOW_CHANGE.value,
                             restart_from_scratch=_RESTART.value)
  except UserError as e:
    sys.exit(f'ERROR: {e}')  # Each names the field/path and the fix.
  except Preempted as e:
    print(e, flush=True)
    sys.exit(PREEMPTED_EXIT_CODE)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
