"""Batched, data-parallel scoring with the MLPP-pruned model, and per-split metrics.

Only the inference subtree is applied (MLPP, paper Sec. 3.5: for RRL-Net the
encoders, FIL, metric network and last stage head; for every registered network
what `score_only=True` touches, scored as sigmoid of its logit-like output). Batches are sharded over a 1-D 'data' mesh of all
devices with variables replicated; the last partial batch is zero-padded to the
full batch and cut, so scores do not depend on the batch size.
"""
import functools
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
from jax.sharding import Mesh
import jax.numpy as jnp
import numpy as np

from rrl_jax import pruning
from rrl_jax.data import sources
from rrl_jax.evaluation import metrics
from rrl_jax.models import RRLNet
from rrl_jax.sharding import DATA_AXIS, batch_sharding, data_mesh, replicated

VIS_NIR_TEST = ('field', 'forest', 'indoor', 'mountain', 'oldbuilding',
                'street', 'urban', 'water')
# uint8 -> [0, 1] exactly as numpy's `u8 / 255.0` cast to float32 (Keras input);
# scoring and export both index this table. (The train step's jitted `/ 255.0`
# compiles to a multiply by float32(1/255): 126 of the 256 values differ by one
# ulp; left as is so training replays the Keras parity fixtures bit for bit.)
U8_TO_UNIT = (np.arange(256) / 255.0).astype(np.float32)


_CHECK_CHUNK = 4096  # pairs per chunk when checking float values


def check_pairs(pairs: Any, patch_size: Optional[int] = 64,
                name: str = 'pairs') -> Any:
  """(N, 2, P, P) uint8 or float in [0, 1], after one clear ValueError per bad input.

  Accepts a trailing channel axis of size 1; `patch_size=None` accepts any size.
  Pair sources (rrl_jax.data.sources) and memory-mapped arrays are checked
  without being read whole: float values chunk by chunk, and returned as they are
  (batches are cast on the device).
  """
  if not isinstance(pairs, sources.PairSource):
    pairs = np.asarray(pairs)  # no copy for arrays and memory maps
  if pairs.ndim == 5:
    if pairs.shape[-1] != 1:
      raise ValueError(f'{name}: patches must be single-channel (grey); got '
                       f'{pairs.shape[-1]} channels in shape {pairs.shape}.')
    pairs = pairs[..., 0]
  if pairs.ndim != 4 or pairs.shape[1] != 2:
    size = patch_size or 'P'
    raise ValueError(f'{name}: expected shape (N, 2, {size}, {size}) '
                     f'(pairs of grey patches, index 0 = visible/optical), got '
                     f'{pairs.shape}.')
  if pairs.shape[0] == 0:
    raise ValueError(f'{name}: no pairs (N = 0).')
  if patch_size and tuple(pairs.shape[2:]) != (patch_size, patch_size):
    raise ValueError(f'{name}: patches are {pairs.shape[2]}x{pairs.shape[3]}, the '
                     f'model takes {patch_size}x{patch_size} (resize them first, e.g. '
                     'with --resize).')
  if pairs.dtype == np.uint8:
    return pairs
  if not np.issubdtype(pairs.dtype, np.floating):
    raise ValueError(f'{name}: patches have dtype {pairs.dtype}; accepted: uint8 '
                     '(0-255) or float in [0, 1] (e.g. .astype(np.uint8) for 0-255 '
                     'integers).')
  _check_float_values(pairs, name)
  return pairs


def _check_float_values(pairs: np.ndarray, name: str) -> None:
  """Float pairs: finite, in [0, 1], and not every patch constant (checked by chunks)."""
  not_finite, lo, hi, varied = 0, np.inf, -np.inf, False
  for start in range(0, len(pairs), _CHECK_CHUNK):
    chunk = np.asarray(pairs[start:start + _CHECK_CHUNK], np.float32)
    finite = np.isfinite(chunk)
    not_finite += int(np.sum(~finite))
    if finite.any():
      lo, hi = min(lo, float(chunk[finite].min())), max(hi, float(chunk[finite].max()))
    flat = chunk.reshape(len(chunk), 2, -1)
    varied = varied or bool((flat.max(-1) > flat.min(-1)).any())
  if not_finite:
    raise ValueError(f'{name}: {not_finite} values are not finite (NaN or inf).')
  if lo < -1e-6 or hi > 1 + 1e-6:
    raise ValueError(f'{name}: {pairs.dtype} patches must lie in [0, 1], got values '
                     f'in [{lo:g}, {hi:g}]; accepted: uint8 (0-255) or float in [0, 1] '
                     '(divide by 255).')
  if not varied:
    raise ValueError(f'{name}: every patch is constant (all {len(pairs)} pairs hold one '
                     f'value per patch, e.g. {lo:g}): nothing to match; check how the '
                     'pack was converted to float.')


@functools.lru_cache(maxsize=32)
def _scorer(model: RRLNet, mesh: Mesh, logits: bool):
  """Jitted pruned scorer: (variables, pairs (B, 2, P, P)) -> (B,) float32."""
  repl, batched = replicated(mesh), batch_sharding(mesh)

  def score(variables, pairs):
    if pairs.dtype == jnp.uint8:
      x = jnp.asarray(U8_TO_UNIT)[pairs.astype(jnp.int32)]
    else:
      x = pairs.astype(jnp.float32)
    logit = pruning.match_logit(model, variables, x[:, 0, ..., None],
                                x[:, 1, ..., None])
    return logit if logits else jax.nn.sigmoid(logit)

  return jax.jit(score, in_shardings=(repl, batched), out_shardings=batched)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def score_pairs(model: RRLNet, variables: Mapping[str, Any], pairs: Any,
                batch_size: int = 256, mesh: Optional[Mesh] = None,
                logits: bool = False, progress: Optional[str] = None) -> np.ndarray:
  """Match probabilities (or logits) (N,) float32 of pairs (N, 2, P, P).

  `variables` may be full or pruned; only the inference subtree is sent to the
  devices. `batch_size` is rounded up to a multiple of the device count.
  `progress` (a label, e.g. the split name) shows a progress bar on stderr:
  pairs done, pairs/s and time left.
  """
  pairs = check_pairs(pairs, model.patch_size)
  if batch_size < 1:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  mesh = mesh if mesh is not None else data_mesh()
  batch_size = _round_up(batch_size, mesh.size)
  variables = jax.device_put(pruning.inference_variables(dict(variables), model),
                             replicated(mesh))
  scorer = _scorer(model, mesh, logits)
  batched = batch_sharding(mesh)
  return score_in_batches(
      lambda batch: scorer(variables, jax.device_put(batch, batched)), pairs,
      batch_size, progress)


def score_in_batches(score_batch: Callable[[np.ndarray], jax.Array], pairs: Any,
                     batch_size: int, progress: Optional[str] = None) -> np.ndarray:
  """score_batch over `pairs` in batches of batch_size -> (N,) float32.

  The last batch is zero-padded to batch_size (one compiled shape) and its
  padding dropped. Batches are dispatched without waiting; a `progress` bar
  counts finished pairs, one batch behind the dispatch.
  """
  outputs = []
  bar = None
  if progress:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(total=len(pairs), desc=progress, unit='pair',
                    dynamic_ncols=True)
  for start in range(0, len(pairs), batch_size):
    batch = np.asarray(pairs[start:start + batch_size])  # reads only these rows
    if batch.dtype != np.uint8:
      batch = batch.astype(np.float32, copy=False)
    valid = len(batch)
    if valid < batch_size:
      pad = np.zeros((batch_size - valid,) + batch.shape[1:], batch.dtype)
      batch = np.concatenate([batch, pad])
    outputs.append((score_batch(batch), valid))
    if bar is not None and len(outputs) > 1:
      jax.block_until_ready(outputs[-2][0])
      bar.update(outputs[-2][1])
  if bar is not None:
    bar.update(outputs[-1][1])
    bar.close()
  return np.concatenate([np.asarray(out)[:valid] for out, valid in outputs]
                        ).astype(np.float32)


def score_splits(model: RRLNet, variables: Mapping[str, Any],
                 splits: Mapping[str, Tuple[Any, Any]], batch_size: int = 256,
                 mesh: Optional[Mesh] = None, progress: bool = False
                 ) -> Dict[str, np.ndarray]:
  """{split: scores (N,)} for {split: (patches, labels)}; a progress bar per split."""
  return {name: score_pairs(model, variables, patches, batch_size, mesh,
                            progress=name if progress else None)
          for name, (patches, _) in splits.items()}


def summarize_splits(labels: Mapping[str, Any], scores: Mapping[str, np.ndarray],
                     dataset: Optional[str] = None) -> Dict[str, Any]:
  """Per-split metrics and their unweighted mean over the splits present.

  For VIS-NIR (`dataset='vis_nir'`) the paper reports the eight test
  categories and their mean; `complete_benchmark` says whether all are here.
  """
  per_split = {name: metrics.summarize(labels[name], scores[name], name)
               for name in scores}
  result = {'splits': per_split, 'mean': metrics.mean_over_splits(per_split),
            'mean_over': list(per_split)}
  if dataset == 'vis_nir':
    result['complete_benchmark'] = set(VIS_NIR_TEST) <= set(per_split)
  return result


def evaluate_splits(model: RRLNet, variables: Mapping[str, Any],
                    splits: Mapping[str, Tuple[Any, Any]], batch_size: int = 256,
                    mesh: Optional[Mesh] = None, dataset: Optional[str] = None,
                    return_scores: bool = False, progress: bool = False
                    ) -> Dict[str, Any]:
  """Metrics per split ({'splits': {name: {...}}, 'mean': {...}, 'mean_over': [...]}).

  With `return_scores` the result also holds {'scores': {split: (N,)}}
  (arrays: not JSON; `rrl_jax.evaluation.reports` writes them separately).
  """
  scores = score_splits(model, variables, splits, batch_size, mesh, progress)
  result = summarize_splits({k: v[1] for k, v in splits.items()}, scores, dataset)
  if has_descriptors(model, variables):
    add_descriptor_fpr95(result, model, variables, splits, batch_size)
  if return_scores:
    result['scores'] = scores
  return result


def has_descriptors(model, variables: Mapping[str, Any]) -> bool:
  """A network with descriptor outputs (KGL-Net) whose head is in `variables`."""
  if not getattr(model, 'descriptor_outputs', None):
    return False
  return pruning.count_parameters(variables.get('params', {})) > pruning.count_parameters(
      pruning.score_path_shapes(model)['params'])


def descriptor_distances(model, variables: Mapping[str, Any], pairs: Any,
                         batch_size: int = 256) -> np.ndarray:
  """L2 distance (N,) between the descriptors of each pair (official cal_fpr95)."""
  names = model.descriptor_outputs

  @jax.jit
  def distance(batch):
    x = batch.astype(jnp.float32) / (255.0 if batch.dtype == jnp.uint8 else 1.0)
    out = model.apply(variables, x[:, 0, ..., None], x[:, 1, ..., None])
    return jnp.linalg.norm(out[names[0]] - out[names[1]], axis=-1)

  pairs = np.asarray(pairs)
  return np.concatenate([np.asarray(distance(pairs[i:i + batch_size]))
                         for i in range(0, len(pairs), batch_size)])


def add_descriptor_fpr95(result: Dict[str, Any], model, variables: Mapping[str, Any],
                         splits: Mapping[str, Tuple[Any, Any]], batch_size: int) -> None:
  """Adds {'descriptor': {'fpr95': %}} per split and to the mean: FPR95 of the
  descriptor L2 distance (smaller = match), beside the metric head's, as the
  official KGL-Net test reports both."""
  values = []
  for name, (patches, labels) in splits.items():
    dist = descriptor_distances(model, variables, patches, batch_size)
    value = metrics.fpr95(labels, -dist)
    result['splits'][name]['descriptor'] = {'fpr95': value}
    values.append(value)
  result['mean']['descriptor'] = {'fpr95': float(np.mean(values))}


def split_selection_fpr95(model: RRLNet, variables: Mapping[str, Any], patches: Any,
                    labels: Any, batch_size: int = 256, mesh: Optional[Mesh] = None,
                    slice_size: Optional[int] = None) -> float:
  """Model-selection score: FPR95 (%), averaged over consecutive slices.

  As the official VIS-NIR selection scores
  `val_data.npy` in 8 slices of 10,000 pairs (`slice_size=10000`) and averages.
  """
  scores = score_pairs(model, variables, patches, batch_size, mesh)
  labels = np.asarray(labels).reshape(-1)
  if not slice_size:
    return metrics.fpr95(labels, scores)
  starts = range(0, len(labels), slice_size)
  return float(np.mean([metrics.fpr95(labels[s:s + slice_size],
                                      scores[s:s + slice_size]) for s in starts]))


def _median_seconds(fn, args, iters: int) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm up
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def mlpp_effect(model: RRLNet, variables: Mapping[str, Any], batch_size: int = 64,
                iters: int = 5, seed: int = 0, latency: bool = True) -> Dict[str, Any]:
  """Parameters and latency: full model (all 8 outputs) vs the MLPP subtree.

  Latency is the median wall time of one jitted batch on the default device
  (`latency=False` counts parameters only and compiles nothing).
  """
  pruned = pruning.inference_variables(dict(variables), model)
  counts = {
      'params_full': pruning.count_parameters(variables['params']),
      'params_pruned': pruning.count_parameters(pruned['params']),
      'batch_stats_full': pruning.count_parameters(variables.get('batch_stats', {})),
      'batch_stats_pruned': pruning.count_parameters(pruned.get('batch_stats', {})),
  }
  if not latency:
    return counts
  rng = np.random.default_rng(seed)
  shape = (batch_size, model.patch_size, model.patch_size, 1)
  xa, xb = (jnp.asarray(rng.random(shape, np.float32)) for _ in range(2))
  full_fn = jax.jit(lambda v, a, b: model.apply(v, a, b, train=False))
  pruned_fn = jax.jit(lambda v, a, b: pruning.match_logit(model, v, a, b))
  full_s = _median_seconds(full_fn, (variables, xa, xb), iters)
  pruned_s = _median_seconds(pruned_fn, (pruned, xa, xb), iters)
  return {
      **counts,
      'batch_size': batch_size,
      'latency_full_ms': 1e3 * full_s,
      'latency_pruned_ms': 1e3 * pruned_s,
      'speedup': full_s / pruned_s,
      'device': str(jax.devices()[0].device_kind),
  }
