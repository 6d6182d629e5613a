"""Official weights -> an rrl_jax checkpoint, and KGL-Net's back to PyTorch.

  python -m launch.convert [--model=rrl_net] --keras_h5=match_model_best.hdf5 --out=DIR
KGL-Net's official PyTorch state_dicts, in and out (rrl_jax/torch_import.py;
needs pip install -e '.[torch]'):
  python -m launch.convert --model=kgl_net --torch_weights=DESC.pth,METRIC.pth --out=DIR
  python -m launch.convert --model=kgl_net --checkpoint=DIR --to_torch=OUT_PREFIX

The conversions themselves are rrl_jax/convert.py and rrl_jax/torch_import.py.
"""
import sys
from typing import Sequence

from absl import app, flags

from rrl_jax import checkpoint_format
from rrl_jax import cli
from rrl_jax import convert
from rrl_jax import logs
from rrl_jax.errors import UserError
from rrl_jax.pruning import count_parameters

FLAGS = flags.FLAGS
flags.DEFINE_string('model', 'rrl_net', 'Network the file holds: rrl_net, '
                    'scfdm, afd_net, mfd_net, efr_net, fil_net or kgl_net.')
flags.DEFINE_string('keras_h5', None, 'Keras HDF5 weights (save_weights or model.save).')
flags.DEFINE_string('out', None, 'Output checkpoint directory (new or empty).')
flags.DEFINE_string('torch_weights', None, 'kgl_net: the official DESC.pth,METRIC.pth '
                    '(net-best-desc.pth,net-best-desc-corr-metric.pth).')
flags.DEFINE_string('checkpoint', None, 'With --to_torch: the checkpoint to write out.')
flags.DEFINE_string('to_torch', None, 'kgl_net: write OUT_PREFIX-desc.pth and '
                    'OUT_PREFIX-desc-corr-metric.pth (official state_dicts).')
cli.define_help_flags()

ERROR_PREFIX = 'launch.convert: error:'


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_logging()  # Orbax logs every file at INFO.
  if FLAGS.to_torch or FLAGS.torch_weights:
    return torch_main()
  if not (FLAGS.keras_h5 and FLAGS.out):
    raise app.UsageError('give --keras_h5 and --out, --torch_weights and --out, '
                         'or --checkpoint and --to_torch.')
  variables, meta, step_dir = _write_checkpoint(
      lambda: convert.convert_keras_h5(FLAGS.keras_h5, FLAGS.model))
  print(f'Converted {FLAGS.keras_h5} ({meta["source"]["kind"]} model, '
        f'{count_parameters(variables["params"]):,} parameters, '
        f'{count_parameters(variables["batch_stats"]):,} BatchNorm statistics) '
        f'-> {step_dir}')


def _write_checkpoint(read):
  """read() -> (variables, meta), saved as a checkpoint in the new --out.

  Returns (variables, meta, step directory); a UserError is one error line.
  """
  try:
    convert.check_output_dir(FLAGS.out)
    variables, meta = read()
    return variables, meta, checkpoint_format.save_variables(FLAGS.out, variables, meta)
  except UserError as e:
    sys.exit(f'{ERROR_PREFIX} {e}')


def torch_main() -> None:
  """--torch_weights -> checkpoint, or --checkpoint -> --to_torch files."""
  from rrl_jax import torch_import  # pylint: disable=g-import-not-at-top
  if FLAGS.to_torch:
    if not FLAGS.checkpoint:
      raise app.UsageError('--to_torch needs --checkpoint=DIR.')
    try:
      variables, meta = checkpoint_format.load_variables(FLAGS.checkpoint)
      written = torch_import.write_torch_weights(variables, meta, FLAGS.to_torch)
    except UserError as e:
      sys.exit(f'{ERROR_PREFIX} {e}')
    print(f'Wrote {", ".join(written)} from {FLAGS.checkpoint}')
    return
  if not FLAGS.out:
    raise app.UsageError('--torch_weights needs --out=DIR.')
  variables, _, step_dir = _write_checkpoint(
      lambda: torch_import.convert_torch_weights(FLAGS.torch_weights, FLAGS.model))
  print(f'Converted {FLAGS.torch_weights} ({count_parameters(variables["params"]):,} '
        f'parameters) -> {step_dir}')


if __name__ == '__main__':
  app.run(main)
