r"""Match probabilities for patch pairs with a trained (pruned) RRL-Net.

Pairs pack (authors' format, index 0 = visible/optical):
  python -m launch.match --checkpoint=DIR --pairs=PACK.npy --out=SCORES.npy
Two images and keypoints (CSV rows xa,ya,xb,yb: patch centres, pixels):
  python -m launch.match --checkpoint=DIR --image_a=vis.png --image_b=nir.png \
      --keypoints=kp.csv --out=SCORES.npy
An exported scorer (launch.export) instead of a checkpoint: --export=FILE.
Writes N float32 probabilities. Patches that are not 64x64 need --resize.
"""
import os
import sys
from typing import Optional

from absl import app, flags
import numpy as np

from rrl_jax import cli
from rrl_jax import logs
from rrl_jax import checkpoint_format
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.evaluation import matcher
from rrl_jax import xla_cpu

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Flags are defined only when run as a program (modules stay importable)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('export', None, 'Exported scorer (launch.export) instead '
                      'of --checkpoint: no model is built.')
  flags.DEFINE_string('pairs', None, 'Pairs pack .npy (N, 2, P, P) uint8.')
  flags.DEFINE_string('image_a', None, 'Visible/optical image (keypoint mode).')
  flags.DEFINE_string('image_b', None, 'Other-spectrum image (keypoint mode).')
  flags.DEFINE_string('keypoints', None, 'CSV of xa,ya,xb,yb rows.')
  flags.DEFINE_string('out', None, 'Output .npy of N float32 probabilities '
                      '(.npy is appended when missing).')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --out file.')
  flags.DEFINE_integer('batch_size', 256, 'Pairs per batch (global).')
  flags.DEFINE_bool('resize', False, 'Resize patches of other sizes to 64x64.')
  flags.DEFINE_integer('patch_size', 64, 'Keypoint mode: side of the cut patches.')
  cli.define_help_flags()


def output_path(out: str, overwrite: bool = False) -> str:
  """The file np.save writes for `out` (.npy appended); refuses an existing one."""
  if not out:
    raise ValueError('--out is required.')
  path = out if out.endswith('.npy') else out + '.npy'
  if os.path.isdir(path):
    raise ValueError(f'--out={out}: {path} is a directory; give a file name.')
  if os.path.exists(path) and not overwrite:
    raise ValueError(f'--out={out}: {path} exists; pass --overwrite to replace it '
                     'or choose another --out.')
  return path


def load_pack(path: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise ValueError(f'{path}: no such pairs file.')
  try:
    return np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise ValueError(f'{path}: not a readable .npy array ({e}).') from e


def run(checkpoint_dir: str, out: str, pairs: Optional[str] = None,
        image_a: Optional[str] = None, image_b: Optional[str] = None,
        keypoints: Optional[str] = None, batch_size: int = 256,
        resize: bool = False, patch_size: int = 64,
        step: Optional[int] = None, overwrite: bool = False,
        progress: bool = False, export: Optional[str] = None) -> np.ndarray:
  """Scores the input, writes `out` (.npy appended when missing).

  Raises ValueError/CheckpointError on bad input, before any scoring.
  """
  keypoint_mode = [image_a, image_b, keypoints]
  if bool(pairs) == any(keypoint_mode):
    raise ValueError('give either --pairs, or --image_a, --image_b and --keypoints.')
  if not pairs and not all(keypoint_mode):
    raise ValueError('keypoint mode needs all of --image_a, --image_b, --keypoints.')
  out = output_path(out, overwrite)
  if pairs:
    data = evaluation.check_pairs(load_pack(pairs), None, name=pairs)
  else:
    data = matcher.cut_pairs_at_keypoints(
        matcher.read_grey_image(image_a), matcher.read_grey_image(image_b),
        matcher.read_keypoints(keypoints), patch_size)
  if export:  # An exported scorer (rrl_jax.evaluation.export) instead of a checkpoint.
    match = matcher.Matcher.from_export(export, batch_size=batch_size, resize=resize)
  else:
    match = matcher.Matcher.from_checkpoint(checkpoint_dir, step,
                                            batch_size=batch_size, resize=resize)
  scores = match.score(data, progress=progress).astype(np.float32)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.save(out, scores)
  return scores


def main(argv):
  del argv
  xla_cpu.apply_xla_flags()  # Before the backend starts (measured faster).
  logs.quiet_logging()
  if bool(FLAGS.checkpoint) == bool(FLAGS.export):
    sys.exit('launch.match: error: give one of --checkpoint or --export.')
  try:
    out = output_path(FLAGS.out, FLAGS.overwrite)
    ckpt = cli.checkpoint_dir(FLAGS.checkpoint) if FLAGS.checkpoint else None
    scores = run(ckpt, out, FLAGS.pairs, FLAGS.image_a,
                 FLAGS.image_b, FLAGS.keypoints, FLAGS.batch_size,
                 FLAGS.resize, FLAGS.patch_size, FLAGS.step,
                 overwrite=FLAGS.overwrite, progress=True, export=FLAGS.export)
  except (ValueError, checkpoint_format.CheckpointError) as e:
    sys.exit(f'launch.match: error: {e}')
  print(f'{len(scores)} pairs scored -> {out} '
        f'(P(match) > 0.5: {int(np.sum(scores > 0.5))})')


if __name__ == '__main__':
  define_flags()
  app.run(main)
