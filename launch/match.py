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
  flags.DEFINE_string('descriptors_out', None, 'Also write desc_a, desc_b (N, D) '
                      'to this .npz (networks with descriptors: kgl_net).')
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
  """The pack memory-mapped: scoring reads it batch by batch, never whole."""
  if not os.path.isfile(path):
    raise ValueError(f'{path}: no such pairs file.')
  if os.path.getsize(path) == 0:
    raise ValueError(f'{path}: empty file (0 bytes); expected a .npy pairs pack.')
  try:
    # Memory-mapped: scoring reads it batch by batch. Never unpickle a user's file.
    return np.load(path, mmap_mode='r', allow_pickle=False)
  except ValueError as e:
    if 'allow_pickle' in str(e) or 'Python objects' in str(e):
      raise ValueError(f'{path}: holds pickled Python objects (an object array); '
                       'rrl_jax never unpickles input files: save a numeric uint8 '
                       'array (N, 2, 64, 64).') from None
    raise ValueError(f'{path}: not a readable .npy array ({e}).') from e
  except (OSError, EOFError) as e:
    raise ValueError(f'{path}: not a readable .npy array ({e}).') from e


def run(checkpoint_dir: str, out: str, pairs: Optional[str] = None,
        image_a: Optional[str] = None, image_b: Optional[str] = None,
        keypoints: Optional[str] = None, batch_size: int = 256,
        resize: bool = False, patch_size: int = 64,
        step: Optional[int] = None, overwrite: bool = False,
        progress: bool = False, export: Optional[str] = None,
        descriptors_out: Optional[str] = None) -> np.ndarray:
  """Scores the input, writes `out` (.npy appended when missing).

  Raises ValueError/CheckpointError on bad input, before any scoring.
  """
  keypoint_mode = [image_a, image_b, keypoints]
  if bool(pairs) == any(keypoint_mode):
    raise ValueError('give either --pairs, or --image_a, --image_b and --keypoints.')
  if not pairs and not all(keypoint_mode):
    raise ValueError('keypoint mode needs all of --image_a, --image_b, --keypoints.')
  out = output_path(out, overwrite)
  matcher.checked_batch_size(batch_size)  # Before any loading, either mode.
  if patch_size < 1:
    raise ValueError(f'--patch_size={patch_size}: the side of the patches cut at '
                     'each keypoint must be a positive number of pixels (e.g. 64).')
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
  if descriptors_out:
    descriptors_out = descriptors_path(descriptors_out, overwrite)
    if getattr(match, 'descriptor_variables', None) is None:
      raise ValueError(f'--descriptors_out: {checkpoint_dir or export} holds a network '
                       'without descriptors (kgl_net has them; scores only otherwise).')
  scores = match.score(data, progress=progress).astype(np.float32)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.save(out, scores)
  if descriptors_out:
    desc_a, desc_b = match.descriptors(data)
    os.makedirs(os.path.dirname(os.path.abspath(descriptors_out)), exist_ok=True)
    np.savez(descriptors_out, desc_a=desc_a, desc_b=desc_b)
  return scores


def descriptors_path(path: str, overwrite: bool = False) -> str:
  """The .npz file --descriptors_out names; refuses an existing one."""
  path = path if path.endswith('.npz') else path + '.npz'
  if os.path.exists(path) and not overwrite:
    raise ValueError(f'--descriptors_out: {path} exists; pass --overwrite to replace it.')
  return path


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
                 overwrite=FLAGS.overwrite, progress=True, export=FLAGS.export,
                 descriptors_out=FLAGS.descriptors_out)
  except (ValueError, checkpoint_format.CheckpointError) as e:
    sys.exit(f'launch.match: error: {e}')
  print(f'{len(scores)} pairs scored -> {out} '
        f'(P(match) > 0.5: {int(np.sum(scores > 0.5))})')
  if FLAGS.descriptors_out:
    print(f'descriptors desc_a, desc_b -> {descriptors_path(FLAGS.descriptors_out, True)}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
