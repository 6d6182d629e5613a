"""A deployable scorer: the folded MLPP model as a serialized `jax.export` artifact.

FILE holds the StableHLO of `pairs (B, 2, P, P) float32 in [0, 1] -> P(match)
(B,) float32` with a symbolic batch B, lowered for CPU and CUDA. The weights
(the BatchNorm-folded inference subtree, `rrl_jax.evaluation.deploy`) are baked in as
constants: the artifact is the whole model, nothing else is loaded. FILE.json,
the sidecar, describes the input, the preprocessing (uint8 / 255), the model,
the parameter counts, the source checkpoint and FILE's SHA-256.

Running it needs jax only (`jax.export.deserialize`), not rrl_jax's model code.
"""
import hashlib
import json
import os
from typing import Any, Dict, Optional, Sequence

import jax
from jax import export as jax_export
import jax.numpy as jnp
import numpy as np

from rrl_jax import pruning
from rrl_jax.errors import UserError
from rrl_jax.evaluation import deploy
from rrl_jax.evaluation.scoring import U8_TO_UNIT  # Re-exported.
from rrl_jax.evaluation.scoring import score_in_batches
from rrl_jax.models import RRLNet, model_config, model_from_config, model_name

FORMAT = 'rrl_jax.export'
VERSION = 1
PLATFORMS = ('cpu', 'cuda')


class ExportError(UserError, ValueError):
  """A path is not a usable exported scorer (the message names file and field)."""


def sidecar_path(path: str) -> str:
  return path + '.json'


def export_scorer(model: RRLNet, folded: Dict[str, Any],
                  platforms: Sequence[str] = PLATFORMS) -> jax_export.Exported:
  """Exports pairs -> P(match) with `folded` (deploy variables) as constants."""
  constants = jax.tree_util.tree_map(jnp.asarray, folded)

  def score(pairs):
    logit = pruning.match_logit(model, constants, pairs[:, 0, ..., None],
                                pairs[:, 1, ..., None])
    return jax.nn.sigmoid(logit)

  batch, = jax_export.symbolic_shape('batch')
  spec = jax.ShapeDtypeStruct((batch, 2, model.patch_size, model.patch_size),
                              jnp.float32)
  return jax_export.export(jax.jit(score), platforms=tuple(platforms))(spec)


def export_checkpoint(variables: Dict[str, Any], meta: Dict[str, Any], out: str,
                      source: str = '', platforms: Sequence[str] = PLATFORMS,
                      step: Optional[int] = None) -> Dict[str, Any]:
  """Folds, exports and writes `out` + `out`.json; returns the sidecar dict.

  The network is the checkpoint's (meta 'model_name', any of the model zoo);
  `step` is the checkpoint step exported (recorded in the sidecar).
  """
  model = model_from_config(meta['model'], name=meta.get('model_name'))
  pruned = pruning.inference_variables(dict(variables), model)
  folded, report = deploy.deploy_variables(model, pruned)
  exported = export_scorer(model, folded, platforms)
  try:
    blob = bytes(exported.serialize())
  except ImportError as e:  # jax needs the flatbuffers package for this.
    raise ExportError(f'cannot serialize the export: {e}.') from None
  p = model.patch_size
  sidecar = {
      'format': FORMAT, 'version': VERSION,
      'model': model_name(model), 'model_config': model_config(model),
      'input': {'name': 'pairs', 'shape': ['batch', 2, p, p], 'dtype': 'float32',
                'range': [0.0, 1.0],
                'layout': 'pairs[:, 0] visible/optical, pairs[:, 1] other spectrum'},
      'preprocessing': 'uint8 patches / 255 as float32 (numpy: '
                       '(np.arange(256) / 255.0).astype(np.float32)[u8])',
      'output': {'shape': ['batch'], 'dtype': 'float32',
                 'meaning': 'P(match) = sigmoid(last stage head logit)'},
      'platforms': list(exported.platforms),
      'weights': 'baked into the artifact as constants (BatchNorm folded)',
      'counts': {
          'params_pruned': pruning.count_parameters(pruned['params']),
          'batch_stats_pruned': pruning.count_parameters(pruned.get('batch_stats', {})),
          'params_deployed': pruning.count_parameters(folded),
          'batch_norms_folded': len(report.folded),
          'batch_norms_left': len(report.unfolded)},
      'source_checkpoint': source, 'source_step': step, 'source_meta': {
          k: meta.get(k) for k in ('source', 'step', 'config') if k in meta},
      'jax_version': jax.__version__,
      'sha256': hashlib.sha256(blob).hexdigest(), 'bytes': len(blob),
  }
  sidecar['sidecar_sha256'] = sidecar_digest(sidecar)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  # Both files are complete under temporary names before either is renamed: a
  # kill never leaves a half-written file (at worst, between the renames, a
  # pair whose checksum check refuses it).
  with open(out + '.tmp', 'wb') as f:
    f.write(blob)
  with open(sidecar_path(out) + '.tmp', 'w') as f:
    json.dump(sidecar, f, indent=1, default=str)
  os.replace(out + '.tmp', out)
  os.replace(sidecar_path(out) + '.tmp', sidecar_path(out))
  return sidecar


def sidecar_digest(sidecar: Dict[str, Any]) -> str:
  """SHA-256 of the sidecar's own fields (all but 'sidecar_sha256'), as JSON."""
  fields = {k: v for k, v in sidecar.items() if k != 'sidecar_sha256'}
  text = json.dumps(json.loads(json.dumps(fields, default=str)), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()


def read_sidecar(path: str) -> Dict[str, Any]:
  """The checked sidecar of artifact `path` (ExportError with one clear line)."""
  side = sidecar_path(path)
  if not os.path.isfile(path):
    raise ExportError(f'{path}: no such exported model file.')
  if not os.path.isfile(side):
    raise ExportError(f'{side}: sidecar missing (written beside {path} by '
                      '`python -m launch.export`).')
  try:
    with open(side) as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise ExportError(f'{side}: not readable JSON ({e}).') from None
  if not isinstance(meta, dict) or meta.get('format') != FORMAT:
    got = meta.get('format') if isinstance(meta, dict) else type(meta).__name__
    raise ExportError(f'{side}: field "format" is {got!r}, expected {FORMAT!r}.')
  if meta.get('version') != VERSION:
    raise ExportError(f'{side}: field "version" is {meta.get("version")!r}, this '
                      f'rrl_jax reads version {VERSION}.')
  shape = meta.get('input', {}).get('shape')
  if not (isinstance(shape, list) and len(shape) == 4
          and all(isinstance(s, int) for s in shape[1:])):
    raise ExportError(f'{side}: field "input.shape" is {shape!r}, expected '
                      '["batch", 2, P, P].')
  # Sidecars written before the self-checksum have none: nothing to check.
  if 'sidecar_sha256' in meta and meta['sidecar_sha256'] != sidecar_digest(meta):
    raise ExportError(f'{side}: its own checksum (field "sidecar_sha256") does not '
                      f'match its contents: the sidecar was edited after export. '
                      f'Re-export with `python -m launch.export`.')
  return meta


class ExportedScorer:
  """Scores pairs with an artifact of `launch.export`; builds no model."""

  def __init__(self, path: str):
    self.path = path
    self.meta = read_sidecar(path)
    with open(path, 'rb') as f:
      blob = f.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != self.meta.get('sha256'):
      recorded = str(self.meta.get('sha256'))[:12]
      raise ExportError(
          f'{path}: its SHA-256 {digest[:12]}... differs from the {recorded}... '
          f'that {sidecar_path(path)} (field "sha256") records: the artifact was '
          'changed after export, or the sidecar belongs to another export. '
          'Re-export with `python -m launch.export`.')
    try:
      self.exported = jax_export.deserialize(bytearray(blob))
    except Exception as e:  # pylint: disable=broad-except
      raise ExportError(f'{path}: not a jax.export artifact this jax '
                        f'{jax.__version__} can read ({type(e).__name__}: '
                        f'{str(e)[:200]}).') from None
    platform = jax.devices()[0].platform
    platform = 'cuda' if platform == 'gpu' else platform
    if platform not in self.exported.platforms:
      raise ExportError(f'{path}: exported for {list(self.exported.platforms)}, '
                        f'this machine runs {platform}.')
    self._call = jax.jit(self.exported.call)

  @property
  def patch_size(self) -> int:
    return int(self.meta['input']['shape'][2])

  def __call__(self, pairs: Any) -> jax.Array:
    """P(match) (B,) of float32 pairs (B, 2, P, P) in [0, 1]."""
    return self._call(pairs)

  def score(self, pairs: np.ndarray, batch_size: int = 256,
            progress: Optional[str] = None) -> np.ndarray:
    """P(match) (N,) float32 for checked pairs (uint8 or float32 [0, 1]).

    Batches are zero-padded to `batch_size` (one compiled shape), as
    `evaluation.score_pairs` does.
    """
    p = self.patch_size
    if pairs.ndim != 4 or pairs.shape[1:] != (2, p, p):
      raise ExportError(f'{self.path}: expects pairs of shape (N, 2, {p}, {p}), '
                        f'got {pairs.shape}.')
    return score_in_batches(
        lambda batch: self(U8_TO_UNIT[batch] if batch.dtype == np.uint8
                           else batch.astype(np.float32)),
        pairs, batch_size, progress)
