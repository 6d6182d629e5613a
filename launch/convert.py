"""Official Keras weights (.h5) -> an rrl_jax checkpoint (README, "Official Keras weights").

  python -m launch.convert [--model=rrl_net] --keras_h5=match_model_best.hdf5 --out=DIR

The conversion itself is rrl_jax/convert.py.
"""
import sys
from typing import Sequence

from absl import app, flags

from rrl_jax import cli
from rrl_jax import logs
from rrl_jax import convert
from rrl_jax.errors import UserError
from rrl_jax import checkpoint_format

FLAGS = flags.FLAGS
flags.DEFINE_string('model', 'rrl_net', 'Network the file holds: rrl_net, '
                    'scfdm, afd_net, mfd_net, efr_net or fil_net.')
flags.DEFINE_string('keras_h5', None, 'Keras HDF5 weights (save_weights or model.save).')
flags.DEFINE_string('out', None, 'Output checkpoint directory (new or empty).')
flags.mark_flags_as_required(['keras_h5', 'out'])
cli.define_help_flags()


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_logging()  # Orbax logs every file at INFO.
  try:
    convert.check_output_dir(FLAGS.out)
    variables, meta = convert.convert_keras_h5(FLAGS.keras_h5, FLAGS.model)
    step_dir = checkpoint_format.save_variables(FLAGS.out, variables, meta)
  except UserError as e:
    sys.exit(f'launch.convert: error: {e}')
  from rrl_jax.pruning import count_parameters  # pylint: disable=g-import-not-at-top
  print(f'Converted {FLAGS.keras_h5} ({meta["source"]["kind"]} model, '
        f'{count_parameters(variables["params"]):,} parameters, '
        f'{count_parameters(variables["batch_stats"]):,} BatchNorm statistics) '
        f'-> {step_dir}')


if __name__ == '__main__':
  app.run(main)
