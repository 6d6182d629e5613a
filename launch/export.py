r"""Exports a checkpoint's match scorer, BatchNorm folded, as a jax.export artifact.

  python -m launch.export --checkpoint=DIR --out=rrl.jaxexport
  python -m launch.match --export=rrl.jaxexport --pairs=PACK.npy --out=SCORES.npy

Writes OUT (serialized StableHLO, batch dimension symbolic, CPU and CUDA; the
folded MLPP weights are baked in as constants) and OUT.json (input spec,
preprocessing uint8 / 255, model, parameter counts, source checkpoint, SHA-256).
See rrl_jax/evaluation/export.py.
"""
import os
import sys

from absl import app, flags

from rrl_jax import cli, xla_cpu
from rrl_jax import checkpoint_format
from rrl_jax import logs
from rrl_jax.errors import UserError
from rrl_jax.training import workdir

FLAGS = flags.FLAGS


def define_flags() -> None:
  cli.define_checkpoint_flags()
  flags.DEFINE_string('out', None, 'Artifact file to write (OUT.json beside it).')
  flags.DEFINE_list('platforms', ['cpu', 'cuda'], 'Platforms to lower for.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --out.')
  cli.define_help_flags()


def run(checkpoint_dir: str, out: str, step=None, platforms=('cpu', 'cuda'),
        overwrite: bool = False):
  """Exports; returns the sidecar dict. ValueError/CheckpointError on bad input.

  Holds OUT.lock beside OUT meanwhile: a second export to OUT is refused.
  """
  if not out:
    raise ValueError('--out is required.')
  if os.path.isdir(out):
    raise ValueError(f'--out={out} is a directory; give a file name.')
  with workdir.output_lock(out):
    if os.path.exists(out) and not overwrite:
      raise ValueError(f'--out={out} exists; pass --overwrite to replace it.')
    return _export(checkpoint_dir, out, step, platforms)


def _export(checkpoint_dir, out, step, platforms):
  from rrl_jax.evaluation import export  # pylint: disable=g-import-not-at-top
  _, step = checkpoint_format.load_meta(checkpoint_dir, step)
  variables, meta = checkpoint_format.load_variables(checkpoint_dir, step)
  if not isinstance(meta.get('model'), dict):
    raise checkpoint_format.CheckpointError(
        f'{checkpoint_dir}: checkpoint meta has no "model" entry (model kwargs).')
  return export.export_checkpoint(variables, meta, out,
                                  source=os.path.abspath(checkpoint_dir),
                                  platforms=platforms, step=step)


def main(argv):
  del argv
  xla_cpu.apply_xla_flags()
  logs.quiet_logging()
  if not FLAGS.checkpoint:
    sys.exit('launch.export: error: --checkpoint is required.')
  try:
    ckpt = cli.checkpoint_dir(FLAGS.checkpoint)
    side = run(ckpt, FLAGS.out, FLAGS.step, FLAGS.platforms, FLAGS.overwrite)
  except (ValueError, UserError) as e:
    sys.exit(f'launch.export: error: {e}')
  c = side['counts']
  print(f"exported {FLAGS.out} ({side['bytes'] / 2**20:.1f} MiB, "
        f"{', '.join(side['platforms'])}): {c['params_deployed']:,} parameters "
        f"after folding {c['batch_norms_folded']} BatchNorms "
        f"(pruned: {c['params_pruned']:,} + {c['batch_stats_pruned']:,} statistics); "
        f'sidecar {FLAGS.out}.json')


if __name__ == '__main__':
  define_flags()
  app.run(main)
