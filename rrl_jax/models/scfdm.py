"""SCFDM: one conv tower on the side-by-side pair (official network_models/SCFDM.py).

The two patches are joined along the width axis into one 64x128 image (a on
the left, b on the right) and run through ONE tower of six conv3x3 -> BN ->
ReLU layers (2x2 max pooling after the 1st, 2nd, 4th and 6th), so kernels see
across the a|b seam. The 4x8 output map is split back into its a and b halves
(fixtures/keras_baselines/SCFDM/README.md).

Outputs of `SCFDM()(xa, xb, train)`:
  'match'  -- softmax logits (N, 2) of the MLP on |half_a - half_b| (Keras
              out0 = softmax(match); the test score is its class-1 probability);
  'cosine' -- (N,) in [0, 1]: (cos(max_a, max_b) + 1) / 2 of the two halves'
              global max-pooled features (Keras out1[:, 0]; trained with BCE).
With `score_only=True` only the 'match' path runs and the result is
z = logit1 - logit0 (N,), so sigmoid(z) == softmax(match)[:, 1] = P(match).
The cosine output has no parameters, so the score path holds all of them.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.heads import probability_fn
from rrl_jax.models.layers import ConvBNReLU, dense, max_pool2
from rrl_jax.models.rrl_net import prepare_pair

OUTPUT_NAMES = ('match', 'cosine')
# 1-based tower layers followed by a 2x2 max pool (the official topology).
POOL_AFTER = (1, 2, 4, 6)


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """Keras K.l2_normalize: x / sqrt(max(sum(x^2), 1e-12))."""
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, 1e-12))


class SCFDM(nn.Module):
  """Siamese-free cross-spectral feature difference model (official SCFDM).

  Attributes:
    widths: filters of the tower convs (official six: 64, 128, 256, 256, 256,
      256); a shorter list (reduced test models) keeps the pools of the
      convs it has.
    head_hidden: hidden units of the softmax head's ReLU Dense layers.
    patch_size: input patch side.
    dtype: computation dtype (parameters stay float32).
  """
  widths: Sequence[int] = (64, 128, 256, 256, 256, 256)
  head_hidden: Sequence[int] = (1024, 128)
  patch_size: int = 64
  dtype: Optional[Any] = None

  score_output = 'match'
  output_names = OUTPUT_NAMES

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa, xb = prepare_pair(xa, xb, self.patch_size, self.dtype)
    if not self.widths:
      raise ValueError('SCFDM: widths must list the tower convs (official 6).')
    dtype = self.dtype
    x = jnp.concatenate([xa, xb], axis=2)  # N,P,2P,1
    for i, width in enumerate(self.widths, 1):
      x = ConvBNReLU(width, dtype=dtype, name=f'cbr{i}')(x, train)
      if i == 1:
        self.sow('intermediates', 'relu1', x)
      if i in POOL_AFTER:
        x = max_pool2(x)
    self.sow('intermediates', 'tower', x)
    half = x.shape[2] // 2
    x1, x2 = x[:, :, :half], x[:, :, half:]

    h = jnp.abs(x1 - x2).reshape(x.shape[0], -1)  # Flatten, NHWC C-order
    self.sow('intermediates', 'flat', h)
    for j, units in enumerate(self.head_hidden, 1):
      h = nn.relu(dense(units, dtype, f'dense{j}')(h))
      self.sow('intermediates', f'fc{j}', h)
    logits = dense(2, dtype, 'logits')(h)
    if score_only:
      return logits[:, 1] - logits[:, 0]

    # MaxPooling2D 4x4/4 'same' on the 4x4 halves = global max per channel.
    p1 = jnp.max(x1.astype(jnp.float32), axis=(1, 2))
    p2 = jnp.max(x2.astype(jnp.float32), axis=(1, 2))
    self.sow('intermediates', 'pooled_a', p1)
    self.sow('intermediates', 'pooled_b', p2)
    cosine = (jnp.sum(l2_normalize(p1) * l2_normalize(p2), axis=-1) + 1.0) / 2.0
    return {'match': logits, 'cosine': cosine}

  match_probability = staticmethod(probability_fn('match', two_class=True))


match_probability = SCFDM.match_probability


def keras_layer_plan(model: SCFDM) -> Dict[str, List[Tuple[str, ...]]]:
  """Flax module paths per Keras layer type, in the official model.layers order.

  SCFDM is a single chain, so that is also its creation order: the six tower
  convs/BNs, then the three Dense layers of the softmax head.
  """
  cbrs = [(f'cbr{i}',) for i in range(1, len(model.widths) + 1)]
  dense = [(f'dense{j}',) for j in range(1, len(model.head_hidden) + 1)]
  return {'conv2d': [p + ('conv',) for p in cbrs],
          'batch_normalization': [p + ('bn',) for p in cbrs],
          'dense': dense + [('logits',)]}
