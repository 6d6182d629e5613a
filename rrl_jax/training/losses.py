"""Training objectives: a dict of named weighted terms per network.

RRL-Net (paper Sec. 3.4, docs/training.md): six binary cross-entropies (stage
heads 3-5, module heads 3-5) on the match label and two reconstruction terms
(branch A, B), combined as a weighted sum (paper: all weights 1).
The comparison networks use the official training script's objective, one term
per model output named after it (`objective_terms`): categorical CE on softmax
logits (N, 2), BCE on sigmoid logits (N,), and for SCFDM BCE on its cosine
output (a probability). Every term is returned by name so it can be logged.
"""
import math
from typing import Any, Callable, Dict, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax.errors import UserError

LOSS_NAMES = ('stage3', 'stage4', 'stage5', 'module3', 'module4', 'module5',
              'recon_a', 'recon_b')
HEAD_NAMES = LOSS_NAMES[:6]
RECON_LOSSES = ('perceptual', 'mse')
RECON_TARGETS = {'recon_a': 'xa', 'recon_b': 'xb'}

# Keras 2.2 clips probabilities to [eps, 1 - eps] before the log; on logits
# that is a clip to +-log((1 - eps) / eps) (computed in float32 like Keras).
_KERAS_EPSILON = 1e-7
_LOGIT_CLIP = float(np.log(np.float32(1 - _KERAS_EPSILON)
                           / np.float32(_KERAS_EPSILON)))

ReconLoss = Callable[[jax.Array, jax.Array], jax.Array]


def bce_with_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Keras 2.2 binary cross-entropy of sigmoid(logits), averaged over the batch.

  Keras 2.2 clips the probability to [1e-7, 1 - 1e-7] (docs/faithfulness.md);
  clipping the logit is the same clip, evaluated stably.
  Beyond the clip the gradient is zero, as in Keras.
  """
  z = jnp.clip(logits.astype(jnp.float32), -_LOGIT_CLIP, _LOGIT_CLIP)
  y = jnp.reshape(labels, z.shape).astype(jnp.float32)
  per_example = jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
  return jnp.mean(per_example)


def pixel_mse(recon: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error over every pixel of the batch (float32)."""
  diff = recon.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.square(diff))


def make_recon_loss(kind: str, vgg_params: Optional[Any] = None,
                    pixel_weight: float = 0.1) -> ReconLoss:
  """Returns fn(recon, target) -> scalar for `kind` 'perceptual' or 'mse'.

  perceptual: pixel_weight * pixel MSE + MSE of VGG19 block5_conv4 features
    (grey patch repeated to 3 channels, [0, 1], no ImageNet preprocessing);
    VGG19 is frozen (stop_gradient on its parameters and on the target).
  mse: pixel_weight * pixel MSE only (what the Keras training replay used).
  """
  if kind == 'mse':
    def mse_loss(recon, target):
      return pixel_weight * pixel_mse(recon, target)
    return mse_loss
  if kind != 'perceptual':
    raise ValueError(f"recon_loss must be 'perceptual' or 'mse', got {kind!r}.")
  if vgg_params is None:
    raise ValueError("recon_loss='perceptual' needs VGG19 parameters: load them "
                     'with rrl_jax.training.vgg19.load_vgg19_params(path).')
  from rrl_jax.training import vgg19  # pylint: disable=g-import-not-at-top

  def perceptual_loss(recon, target):
    params = jax.lax.stop_gradient(vgg_params)
    recon = recon.astype(jnp.float32)
    target = jax.lax.stop_gradient(target.astype(jnp.float32))
    f_recon = vgg19.vgg19_block5_conv4(params, jnp.repeat(recon, 3, axis=-1))
    f_target = vgg19.vgg19_block5_conv4(params, jnp.repeat(target, 3, axis=-1))
    return (pixel_weight * pixel_mse(recon, target)
            + jnp.mean(jnp.square(f_recon - f_target)))
  return perceptual_loss


def loss_terms(outputs: Mapping[str, jax.Array], labels: jax.Array,
               xa: jax.Array, xb: jax.Array,
               recon_loss: ReconLoss) -> Dict[str, jax.Array]:
  """Named per-output losses for the heads present in `outputs`.

  Reconstruction targets are the inputs the encoders saw (after augmentation).
  """
  targets = {'xa': xa, 'xb': xb}
  terms = {}
  for name in LOSS_NAMES:
    if name not in outputs:
      continue
    if name in RECON_TARGETS:
      terms[name] = recon_loss(outputs[name], targets[RECON_TARGETS[name]])
    else:
      terms[name] = bce_with_logits(outputs[name], labels)
  return terms


def weighted_total(terms: Mapping[str, jax.Array],
                   weights: Mapping[str, float]) -> jax.Array:
  """Sum of weights[name] * term (a name missing from weights has weight 1).

  Weights may be Python floats or (traced) float32 scalars.

  Raises ValueError for a weight naming no known loss (a likely typo).
  """
  unknown = sorted(set(weights.keys()) - set(LOSS_NAMES))
  if unknown:
    raise ValueError(f'Unknown loss weight(s) {unknown}; known: {list(LOSS_NAMES)}.')
  total = jnp.zeros((), jnp.float32)
  for name in LOSS_NAMES:
    if name in terms:
      weight = weights[name] if name in weights else 1.0
      total = total + jnp.asarray(weight, jnp.float32) * terms[name]
  return total


# ----------------------------------------------------------------------------
# Every network: the official training script's objective (Keras 2.2 losses,
# loss weights 1 unless config.loss_weights says otherwise).

# Keras loss per output kind: 'logits2' = softmax logits (N, 2), 'scalar' = an
# (N,) output, 'image' = a reconstruction (N, H, W, 1).
NETWORK_LOSSES = {
    'rrl_net': {'scalar': 'bce_logits', 'image': 'recon'},
    'scfdm': {'logits2': 'categorical_ce', 'scalar': 'bce_probability'},
    'afd_net': {'logits2': 'categorical_ce'},
    'mfd_net': {'scalar': 'bce_logits'},
    'efr_net': {'scalar': 'bce_logits'},
    'fil_net': {'scalar': 'bce_logits'},
}


def categorical_ce_with_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Keras 2.2 categorical cross-entropy of softmax(logits) vs integer labels.

  Keras 2.2 clips the softmax probabilities to [1e-7, 1 - 1e-7] before the
  log, like its BCE; here the log-probabilities get the same clip (zero
  gradient beyond it). Averaged over the batch.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  logp = jnp.clip(logp, np.log(np.float32(_KERAS_EPSILON)),
                  np.log(np.float32(1 - _KERAS_EPSILON)))
  y = jnp.reshape(labels, (-1,)).astype(jnp.int32)
  onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=jnp.float32)
  return jnp.mean(-jnp.sum(onehot * logp, axis=-1))


def bce_on_probability(probs: jax.Array, labels: jax.Array) -> jax.Array:
  """Keras 2.2 binary cross-entropy of an output that already is a probability.

  Clip to [1e-7, 1 - 1e-7], then the cross-entropy (SCFDM's cosine output).
  """
  p = jnp.clip(probs.astype(jnp.float32), _KERAS_EPSILON, 1 - _KERAS_EPSILON)
  y = jnp.reshape(labels, p.shape).astype(jnp.float32)
  return jnp.mean(-(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)))


def output_kind(value: jax.Array) -> str:
  if value.ndim == 1:
    return 'scalar'
  if value.ndim == 2 and value.shape[-1] == 2:
    return 'logits2'
  if value.ndim == 4:
    return 'image'
  return f'shape {tuple(value.shape)}'


def objective_terms(model_name: str, outputs: Mapping[str, jax.Array],
                    labels: jax.Array, xa: jax.Array, xb: jax.Array,
                    recon_loss: Optional[ReconLoss] = None) -> Dict[str, jax.Array]:
  """Named loss terms of `model_name`'s official objective, one per output.

  RRL-Net (and its ablations) is `loss_terms` unchanged: terms of removed
  heads/decoders are absent because their outputs are.
  """
  if model_name == 'kgl_net':
    return kgl_objective(outputs)
  if model_name not in NETWORK_LOSSES:
    raise ValueError(f'No objective for model {model_name!r}; known: '
                     f'{sorted(NETWORK_LOSSES)}.')
  if model_name == 'rrl_net':
    return loss_terms(outputs, labels, xa, xb, recon_loss)
  kinds = NETWORK_LOSSES[model_name]
  fns = {'categorical_ce': categorical_ce_with_logits,
         'bce_logits': bce_with_logits, 'bce_probability': bce_on_probability}
  terms = {}
  for name, value in outputs.items():
    kind = output_kind(value)
    if kind not in kinds:
      raise ValueError(f'{model_name} output {name!r} ({kind}) has no loss in '
                       f'its objective (kinds {sorted(kinds)}).')
    terms[name] = fns[kinds[kind]](value, labels)
  return terms


# ----------------------------------------------------------------------------
# KGL-Net: the official train_KGL-Net.py objective (rrl_jax/models/kgl_net.py).
HYNET_MARGIN = 1.2
HYNET_ALPHA = 2.0
NORM_WEIGHT = 0.1  # official Loss_HyNet_metric.norm_loss_pos


def torch_bce_with_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """torch.nn.BCELoss of sigmoid(logits): logs clamped at -100, batch mean."""
  z = logits.astype(jnp.float32)
  y = jnp.reshape(labels, z.shape).astype(jnp.float32)
  log_p = jnp.maximum(jax.nn.log_sigmoid(z), -100.0)
  log_q = jnp.maximum(jax.nn.log_sigmoid(-z), -100.0)
  return -jnp.mean(y * log_p + (1 - y) * log_q)


def hynet_loss(desc_a: jax.Array, desc_b: jax.Array, raw_a: jax.Array,
               raw_b: jax.Array, margin: float = HYNET_MARGIN,
               alpha: float = HYNET_ALPHA) -> jax.Array:
  """The official Loss_HyNet_metric (no SOS term): summed over the batch.

  Hybrid triplet on in-batch hardest negatives: for pair i, d+ = |a_i - b_i|,
  d- = the least of its hardest a-a, b-b, a-b (row) and a-b (column)
  distances; sum of max(0, margin + h(d+) - h(d-)), h(d) = d + alpha d^2 / 2;
  plus 0.1 * sum of (|raw_a_i| - |raw_b_i|)^2 over the raw descriptors' norms.
  """
  from rrl_jax.models import kgl_net  # pylint: disable=g-import-not-at-top
  mined = kgl_net.hardest_negatives(desc_a, desc_b)
  i = jnp.arange(desc_a.shape[0])
  d_pos = jnp.diagonal(mined['LR'])
  d_neg = jnp.min(jnp.stack([
      mined['L'][i, mined['index_LL']], mined['R'][mined['index_RR'], i],
      mined['LR'][i, mined['index_LR']], mined['LR'][mined['index_RL'], i]]), 0)
  h = lambda d: d + jnp.square(d) / 2 * alpha
  triplet = jnp.sum(jnp.maximum(margin + h(d_pos) - h(d_neg), 0.0))
  norm = lambda r: jnp.sqrt(jnp.sum(jnp.square(r), -1) + kgl_net.DIST_EPS)
  return triplet + NORM_WEIGHT * jnp.sum(jnp.square(norm(raw_a) - norm(raw_b)))


def kgl_objective(outputs: Mapping[str, jax.Array]) -> Dict[str, jax.Array]:
  """KGL-Net's four terms, summed with weight 1 by the official training.

  hynet: hynet_loss on the descriptors; metric_bce: BCE of the metric network
  on the positives (label 1) and the mined hardest negatives (label 0), one
  mean over both (the official make_metric_dataset; its shuffle does not
  change the mean); consistency_a/b: MSE between the com and dif features.
  """
  logits = jnp.concatenate([outputs['match'], outputs['mined_match']])
  labels = jnp.concatenate([jnp.ones_like(outputs['match']),
                            jnp.zeros_like(outputs['mined_match'])])
  return {
      'hynet': hynet_loss(outputs['desc_a'], outputs['desc_b'],
                          outputs['desc_raw_a'], outputs['desc_raw_b']),
      'metric_bce': torch_bce_with_logits(logits, labels),
      'consistency_a': pixel_mse(outputs['com_a'], outputs['dif_a']),
      'consistency_b': pixel_mse(outputs['com_b'], outputs['dif_b']),
  }


def objective_total(model_name: str, terms: Mapping[str, jax.Array],
                    weights: Mapping[str, float]) -> jax.Array:
  """Weighted sum of `terms` (in their order; RRL-Net: `weighted_total`).

  Raises ValueError for a weight naming no term (a likely typo).
  """
  if model_name == 'rrl_net':
    return weighted_total(terms, weights)
  unknown = sorted(set(weights.keys()) - set(terms))
  if unknown:
    raise ValueError(f'Unknown loss weight(s) {unknown} for {model_name}; its '
                     f'terms: {list(terms)}.')
  total = jnp.zeros((), jnp.float32)
  for name, term in terms.items():
    weight = weights[name] if name in weights else 1.0
    total = total + jnp.asarray(weight, jnp.float32) * term
  return total


def match_margin(score: jax.Array) -> jax.Array:
  """The score output as a logit-like value: > 0 means 'match'.

  Sigmoid logits (N,) are returned as they are; softmax logits (N, 2) give
  logit1 - logit0, so sigmoid(margin) == softmax(logits)[:, 1].
  """
  score = score.astype(jnp.float32)
  if score.ndim == 2 and score.shape[-1] == 2:
    return score[:, 1] - score[:, 0]
  return score.reshape(-1)


class NonFiniteLossError(UserError, FloatingPointError):
  """A loss term became NaN/Inf; the run stopped without saving."""


def check_finite(metrics: Mapping[str, float], loss_weights: Mapping[str, Any],
                 step: int, last_checkpoint: Callable[[], str]) -> None:
  """Raises NonFiniteLossError naming the offending terms, weights and the
  last good checkpoint (`last_checkpoint()`, asked only on failure)."""
  bad = sorted(k for k, v in metrics.items() if not math.isfinite(v) and k != 'lr')
  weighted_bad = sorted(
      k for k in loss_weights.keys()
      if k in metrics and not math.isfinite(float(loss_weights[k]) * metrics[k]))
  if not (bad or weighted_bad):
    return
  offending = sorted(set(bad + weighted_bad) - {'total', 'grad_norm'}) or bad
  values = {k: metrics.get(k) for k in sorted(set(bad + weighted_bad))}
  weights = {k: loss_weights[k] for k in offending if k in loss_weights}
  raise NonFiniteLossError(
      f'Non-finite loss at step {step}: offending terms {offending} '
      f'(values {values}; weights {weights}). '
      f'Stopped without saving; last good checkpoint: {last_checkpoint()}.')
