r"""Trains and evaluates RRL-Net.

  python -m launch.main --config=configs/demo.py --workdir=/tmp/rrl_demo
  python -m launch.main --config=configs/vis_nir.py --workdir=DIR \
      --config.batch_size=128 --config.optimizer.learning_rate=4e-4

Multi-host: run the same command on every host; Slurm and TPU pods are
detected, or pass --coordinator_address/--num_processes/--process_id.
"""
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

from rrl_jax import distributed
from rrl_jax import xla_cpu

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training config file (e.g. configs/demo.py[:test]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, '
                               'logs, results); an existing run resumes.')
_ALLOW_CHANGE = flags.DEFINE_bool('allow_config_change', False, 'Continue a run '
                                  'in --workdir although its config differs.')
_COORD = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NPROC = flags.DEFINE_integer('num_processes', None, 'Total number of processes.')
_PID = flags.DEFINE_integer('process_id', None, 'Index of this process.')
_CPU_COLL = flags.DEFINE_enum('cpu_collectives', None, ['gloo', 'mpi'],
                              'Cross-process collectives on CPU.')
flags.mark_flags_as_required(['config', 'workdir'])


def quiet_console() -> None:
  """Our progress bar and lines only: no TFDS/absl/Orbax chatter (--verbosity=0
  or higher brings it back)."""
  import warnings  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.ERROR)  # TFDS "Using custom data configuration".
  warnings.filterwarnings('ignore', category=DeprecationWarning)
  warnings.filterwarnings('ignore', category=FutureWarning)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    quiet_console()
  xla_cpu.apply_xla_flags()  # Before the backend starts (measured faster).
  distributed.initialize(_COORD.value, _NPROC.value, _PID.value,
                         cpu_collectives=_CPU_COLL.value)
  from rrl_jax import train  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             allow_config_change=_ALLOW_CHANGE.value)
  except (train.ConfigMismatchError, train.NonFiniteLossError) as e:
    sys.exit(f'ERROR: {e}')
  except train.vgg19.VGG19WeightsError as e:  # Names the path and the fix.
    sys.exit(f'ERROR: {e}')


if __name__ == '__main__':
  app.run(main)
