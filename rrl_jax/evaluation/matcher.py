"""Patch-pair matching for users: a checkpoint in, match probabilities out.

  matcher = Matcher.from_checkpoint('ckpt_dir')
  probs = matcher.score(pairs)            # (N, 2, 64, 64) uint8 or float [0, 1]
  probs = matcher.score_pairs(xa, xb)     # (N, 64, 64[, 1]) each
  desc_a, desc_b = matcher.descriptors(pairs)  # networks with descriptors (KGL-Net)
  matcher = Matcher.from_export('model.jaxexport')   # launch.export output

Only the MLPP inference subtree is loaded onto the devices (MLPP, paper Sec. 3.5),
plus the descriptor head for networks that have one (`descriptor_outputs`).
Index 0 / `xa` is the visible/optical patch, index 1 / `xb` the other spectrum.
"""
from typing import Any, Dict, Mapping, Optional

import cv2
import numpy as np

from rrl_jax import pruning
from rrl_jax import checkpoint_format
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.data import base, pair_lists
from rrl_jax.models import RRLNet, model_from_config


def resize_pairs(pairs: np.ndarray, size: int) -> np.ndarray:
  """Resizes (N, 2, H, W) patches to size x size (area when shrinking, else linear)."""
  if pairs.shape[2:] == (size, size):
    return pairs
  shrink = pairs.shape[2] > size or pairs.shape[3] > size
  interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
  out = np.empty(pairs.shape[:2] + (size, size), pairs.dtype)
  for i in range(pairs.shape[0]):
    for j in range(2):
      out[i, j] = cv2.resize(pairs[i, j], (size, size), interpolation=interpolation)
  return out


def read_grey_image(path: str) -> np.ndarray:
  """An 8-bit image as grey (H, W) uint8 (the dataset builders' reader)."""
  return pair_lists.read_grey(path)


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def read_keypoints(path: str) -> np.ndarray:
  """(N, 4) int rows xa, ya, xb, yb (column, row of the patch centres) from a CSV.

  A first line is a header only when every field is a name (e.g.
  `xa,ya,xb,yb`); a first line mixing numbers and words is an error, never
  silently dropped.
  """
  try:
    with open(path) as f:
      lines = [l.strip() for l in f if l.strip()]
  except OSError as e:
    raise ValueError(f'{path}: cannot read keypoints ({e.strerror}).') from e
  rows = []
  for number, line in enumerate(lines, 1):
    fields = [x.strip() for x in line.replace(';', ',').split(',')]
    numeric = [_is_number(x) for x in fields]
    if number == 1 and not any(numeric) and all(fields):
      continue  # A header of names.
    if not all(numeric):
      raise ValueError(f'{path}:{number}: expected numbers xa,ya,xb,yb, got '
                       f'{line!r}' + (' (a header line must be names only, '
                                      'e.g. xa,ya,xb,yb).' if number == 1 else '.'))
    values = [float(x) for x in fields]
    if len(values) != 4:
      raise ValueError(f'{path}:{number}: expected 4 values xa,ya,xb,yb, got '
                       f'{len(values)}.')
    if not np.all(np.isfinite(values)):
      raise ValueError(f'{path}:{number}: keypoint {len(rows) + 1} has non-finite '
                       f'coordinates {line!r} (expected numbers xa,ya,xb,yb).')
    rows.append(values)
  if not rows:
    raise ValueError(f'{path}: no keypoint rows (expected lines xa,ya,xb,yb).')
  return np.rint(np.asarray(rows)).astype(np.int64)


def cut_pairs_at_keypoints(image_a: np.ndarray, image_b: np.ndarray,
                           keypoints: np.ndarray, patch_size: int = 64) -> np.ndarray:
  """(N, 2, P, P) patches centred on the keypoints: rows y - P/2 .. y + P/2 - 1.

  Raises naming the (1-based) keypoint rows whose window leaves an image.
  """
  kp = np.asarray(keypoints)
  if kp.ndim != 2 or kp.shape[1] != 4:
    raise ValueError(f'keypoints: expected shape (N, 4) rows xa,ya,xb,yb, got {kp.shape}.')
  finite = np.isfinite(kp).all(1)
  if not finite.all():
    bad = (np.flatnonzero(~finite) + 1).tolist()
    raise ValueError(f'{len(bad)} keypoint row(s) {bad[:10]} are not finite (NaN or inf).')
  kp = np.rint(kp).astype(np.int64)
  ok = (base.window_inside(kp[:, 0], kp[:, 1], image_a.shape[1], image_a.shape[0], patch_size)
        & base.window_inside(kp[:, 2], kp[:, 3], image_b.shape[1], image_b.shape[0], patch_size))
  if not ok.all():
    bad = (np.flatnonzero(~ok) + 1).tolist()
    raise ValueError(f'{len(bad)} keypoint row(s) {bad[:10]} are too close to the '
                     f'image border for a {patch_size}x{patch_size} patch.')
  out = np.empty((len(kp), 2, patch_size, patch_size), np.uint8)
  for i, (xa, ya, xb, yb) in enumerate(kp):
    out[i, 0] = base.crop(image_a, xa, ya, patch_size)
    out[i, 1] = base.crop(image_b, xb, yb, patch_size)
  return out


def stack_pairs(xa: Any, xb: Any) -> np.ndarray:
  """(N, 2, P, P) from two arrays (N, P, P) or (N, P, P, 1)."""
  xa, xb = np.asarray(xa), np.asarray(xb)
  if xa.shape != xb.shape:
    raise ValueError(f'xa and xb must have the same shape, got {xa.shape} and '
                     f'{xb.shape}.')
  if xa.ndim == 4 and xa.shape[-1] != 1:
    raise ValueError(f'patches must be single-channel (grey); got {xa.shape[-1]} '
                     f'channels in shape {xa.shape}.')
  if xa.ndim not in (3, 4):
    raise ValueError(f'expected patches of shape (N, P, P) or (N, P, P, 1), got '
                     f'{xa.shape}.')
  return np.stack([xa, xb], axis=1)


def checked_batch_size(batch_size: Any) -> int:
  """A positive int batch size (ValueError naming --batch_size otherwise)."""
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
      or batch_size < 1:
    raise ValueError(f'--batch_size={batch_size}: must be a positive number of pairs.')
  return int(batch_size)


class Matcher:
  """Scores cross-spectral patch pairs with a (pruned) RRL-Net."""

  def __init__(self, model: RRLNet, variables: Mapping[str, Any],
               batch_size: int = 256, mesh=None, resize: bool = False,
               meta: Optional[Dict[str, Any]] = None):
    self.model = model
    self.variables = pruning.inference_variables(dict(variables), model)
    # Descriptors need the layers MLPP prunes (KGL-Net's com path and head).
    self.descriptor_variables = (dict(variables) if getattr(
        model, 'descriptor_outputs', None) else None)
    self.batch_size = checked_batch_size(batch_size)
    self.mesh = mesh
    self.resize = resize
    self.meta = dict(meta or {})

  @classmethod
  def from_checkpoint(cls, path: str, step: Optional[int] = None,
                      **kwargs) -> 'Matcher':
    """Loads a training or converted checkpoint (raises CheckpointError otherwise)."""
    variables, meta = checkpoint_format.load_variables(path, step)
    if not isinstance(meta.get('model'), dict):
      raise checkpoint_format.CheckpointError(
          f'{path}: checkpoint meta has no "model" entry (model kwargs).')
    try:
      model = model_from_config(meta['model'], name=meta.get('model_name'))
      pruning.inference_variables(variables, model)  # a tree that does not fit fails here
    except (TypeError, ValueError) as e:
      raise checkpoint_format.CheckpointError(
          f'{path}: checkpoint does not hold a model the matcher can run '
          f'({e}).') from e
    return cls(model, variables, meta=meta, **kwargs)

  # --- Exported scorer (rrl_jax.evaluation.export): no model is built. ---
  exported = None

  @classmethod
  def from_export(cls, path: str, batch_size: int = 256,
                  resize: bool = False) -> 'Matcher':
    """Scores with an artifact of `launch.export` (raises export.ExportError)."""
    from rrl_jax.evaluation import export  # pylint: disable=g-import-not-at-top
    self = cls.__new__(cls)
    self.batch_size = checked_batch_size(batch_size)
    self.model, self.variables, self.mesh = None, None, None
    self.exported = export.ExportedScorer(path)
    self.resize, self.meta = resize, self.exported.meta
    return self

  @property
  def patch_size(self) -> int:
    if self.exported is not None:
      return self.exported.patch_size
    return self.model.patch_size

  def prepare(self, pairs: Any) -> np.ndarray:
    """Validated (N, 2, P, P) uint8/float32 pairs, resized if `resize` is set."""
    if self.resize:
      pairs = resize_pairs(evaluation.check_pairs(pairs, None), self.patch_size)
    return evaluation.check_pairs(pairs, self.patch_size)

  def score(self, pairs: Any, progress: bool = False) -> np.ndarray:
    """P(match) (N,) float32 for pairs (N, 2, P, P) (index 0 = visible/optical).

    Batches hold at most N pairs: a batch larger than the input is not padded.
    """
    pairs = self.prepare(pairs)
    batch_size = min(self.batch_size, len(pairs))
    if self.exported is not None:
      return self.exported.score(pairs, batch_size,
                                 progress='scoring' if progress else None)
    return evaluation.score_pairs(self.model, self.variables, pairs,
                                  batch_size, self.mesh,
                                  progress='scoring' if progress else None)

  def descriptors(self, pairs: Any):
    """(desc_a, desc_b) float32 (N, D) numpy, L2-normalised, for pairs (N, 2, P, P).

    For networks with descriptors (KGL-Net); one clear ValueError otherwise.
    """
    names = getattr(self.model, 'descriptor_outputs', None)
    if not names or self.descriptor_variables is None:
      what = 'an exported scorer' if self.exported is not None else (
          f'{type(self.model).__name__}')
      raise ValueError(f'{what} has no descriptors; Matcher.descriptors works for '
                       'networks with descriptor outputs (kgl_net) loaded from a checkpoint.')
    pairs = self.prepare(pairs)
    if self._descriptor_fn is None:
      import jax  # pylint: disable=g-import-not-at-top
      model, variables = self.model, self.descriptor_variables

      def describe(batch):
        x = batch.astype('float32') / (255.0 if batch.dtype == np.uint8 else 1.0)
        out = model.apply(variables, x[:, 0, ..., None], x[:, 1, ..., None])
        return out[names[0]], out[names[1]]
      self._descriptor_fn = jax.jit(describe)
    parts = [self._descriptor_fn(pairs[i:i + self.batch_size])
             for i in range(0, len(pairs), self.batch_size)]
    return tuple(np.concatenate([np.asarray(p[k], np.float32) for p in parts])
                 for k in (0, 1))

  _descriptor_fn = None

  def score_pairs(self, xa: Any, xb: Any) -> np.ndarray:
    """P(match) (N,) float32 for patches xa (visible/optical) and xb."""
    return self.score(stack_pairs(xa, xb))
