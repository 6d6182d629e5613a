"""AFD-Net: aggregated feature-difference network (official network_models/AFD.py).

Two feature nets (no weight sharing) of eight conv3x3 -> BN -> ReLU layers, the
even ones with stride 2 and the 2nd/4th followed by a whole-map instance
normalisation, tap five maps; their absolute differences |f_k(a) - f_k(b)| are
fused coarse-to-fine by a second conv stack (fixtures/keras_baselines/AFD/README.md).

Outputs of `AFDNet()(xa, xb, train)` (softmax logits (N, 2); softmax over the
last axis gives the Keras outputs):
  'multi'  -- the aggregated multi-level head (Keras out0, the test score);
  'single' -- the head on the deepest difference alone (Keras out1).
With `score_only=True` only the 'multi' path runs and the result is
z = logit1 - logit0 (N,), so sigmoid(z) == softmax(multi)[:, 1] = P(match).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.heads import probability_fn
from rrl_jax.models.layers import ConvBNReLU, dense, zeros
from rrl_jax.models.rrl_net import prepare_pair

OUTPUT_NAMES = ('multi', 'single')


class InstanceNorm(nn.Module):
  """keras_contrib InstanceNormalization(axis=None) as in official network_module.py.

  Per sample, over all of H, W and C together: (x - mean) / (std + eps) with the
  population std (epsilon added to the std, not the variance), then a scalar
  gamma and beta. Identical in training and inference (no running statistics).
  """
  epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.param('scale', nn.initializers.ones, (1,), jnp.float32)
    bias = self.param('bias', zeros, (1,), jnp.float32)
    xf = x.astype(jnp.float32)
    axes = tuple(range(1, x.ndim))
    mean = jnp.mean(xf, axes, keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(xf - mean), axes, keepdims=True))
    y = (xf - mean) / (std + self.epsilon) * scale + bias
    return y.astype(x.dtype)


class FeatureNet(nn.Module):
  """conv1..conv8 (odd stride 1, even stride 2), IN after conv2 and conv4.

  Returns the five taps relu1, relu3, relu6, relu8, relu10 (64, 32, 16, 8, 4 px).
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, ...]:
    taps = []
    for i, width in enumerate(self.widths):
      x = ConvBNReLU(width, 1, self.dtype, name=f'cbr{2 * i + 1}')(x, train)
      if i == 0:
        taps.append(x)
      x = ConvBNReLU(width, 2, self.dtype, name=f'cbr{2 * i + 2}')(x, train)
      self.sow('intermediates', f'down{i + 1}', x)
      if i < 2:  # in1 / in2, each followed by a ReLU
        x = InstanceNorm(name=f'in{i + 1}')(x)
        self.sow('intermediates', f'norm{i + 1}', x)
        x = nn.relu(x)
      taps.append(x)
    for k, tap in enumerate(taps):
      self.sow('intermediates', f'tap{k + 1}', tap)
    return tuple(taps)


class SoftmaxHead(nn.Module):
  """AveragePooling2D(4x4) -> Flatten -> Dense relu x2 -> Dense 2; returns logits."""
  hidden: Sequence[int] = (512, 256)
  pool: int = 4
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.avg_pool(x, (self.pool, self.pool), (self.pool, self.pool), 'VALID')
    x = x.reshape(x.shape[0], -1)  # C-order over (H, W, C), as Keras Flatten
    self.sow('intermediates', 'flatten', x)
    for i, width in enumerate(self.hidden):
      x = nn.relu(dense(width, self.dtype, f'dense{i + 1}')(x))
      self.sow('intermediates', f'fc{width}', x)
    x = dense(2, self.dtype, 'logits')(x)
    return x.astype(jnp.float32)


class AFDNet(nn.Module):
  """AFD-Net (official AFD.py).

  Attributes:
    widths: feature-net widths per stride level (conv 2i+1 and 2i+2); the
      fusion stages use the same widths and the last fusion conv and the
      single-level conv use 2 * widths[-1].
    head_hidden: hidden widths of both heads' MLPs.
    patch_size: input patch side (the heads' 4x4 average pool expects 64).
    dtype: computation dtype (parameters stay float32).
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  head_hidden: Sequence[int] = (512, 256)
  patch_size: int = 64
  dtype: Optional[Any] = None

  score_output = 'multi'
  output_names = OUTPUT_NAMES

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa, xb = prepare_pair(xa, xb, self.patch_size, self.dtype)
    widths, dtype = tuple(self.widths), self.dtype
    taps_a = FeatureNet(widths, dtype, name='features_a')(xa, train)
    taps_b = FeatureNet(widths, dtype, name='features_b')(xb, train)
    diffs = [jnp.abs(a - b) for a, b in zip(taps_a, taps_b)]  # Subtract + |.|

    x = None
    for k, width in enumerate(widths):
      # Concatenate([previous, sub_k]): the fused map comes first.
      x = diffs[k] if x is None else jnp.concatenate([x, diffs[k]], -1)
      x = ConvBNReLU(width, 1, dtype, name=f'fuse{k + 1}_cbr1')(x, train)
      x = ConvBNReLU(width, 2, dtype, name=f'fuse{k + 1}_cbr2')(x, train)
    x = jnp.concatenate([x, diffs[-1]], -1)
    self.sow('intermediates', 'concat_last', x)
    x = ConvBNReLU(2 * widths[-1], 1, dtype, name='fuse_last')(x, train)
    multi = SoftmaxHead(self.head_hidden, dtype=dtype, name='multi_head')(x)
    if score_only:
      return multi[:, 1] - multi[:, 0]

    single = ConvBNReLU(2 * widths[-1], 1, dtype, name='single_cbr')(diffs[-1], train)
    single = SoftmaxHead(self.head_hidden, dtype=dtype, name='single_head')(single)
    return {'multi': multi, 'single': single}

  match_probability = staticmethod(probability_fn('multi', two_class=True))


# Keras model.layers order (layers sorted by depth, which interleaves the two
# feature nets with the fusion stack) of the Conv2D and BatchNormalization
# layers: ('f', i) is feature-net layer i of net a then net b, ('g', k, j) fusion
# stage k's conv j, then the last fusion conv and out1's conv.
_CONV_ORDER = (('f', 1), ('f', 2), ('g', 1, 1), ('g', 1, 2), ('f', 3), ('f', 4),
               ('g', 2, 1), ('g', 2, 2), ('f', 5), ('g', 3, 1), ('f', 6),
               ('g', 3, 2), ('f', 7), ('g', 4, 1), ('f', 8), ('g', 4, 2),
               ('last',), ('single',))


def keras_layer_plan(model: AFDNet) -> Dict[str, List[Tuple[str, ...]]]:
  """Flax module paths per Keras layer type, in the official model.layers order.

  That is the order of the fixture's layers.tsv and of a Keras HDF5 file's
  layer_names (rrl_jax/keras_import.py). Defined for the official topology
  (four stride levels), at any widths.
  """
  if len(model.widths) != 4:
    raise ValueError(f'AFDNet keras_layer_plan: the official model has 4 width '
                     f'levels, got widths={tuple(model.widths)}.')
  cbrs = []
  for item in _CONV_ORDER:
    if item[0] == 'f':
      cbrs += [(f'features_{s}', f'cbr{item[1]}') for s in 'ab']
    elif item[0] == 'g':
      cbrs.append((f'fuse{item[1]}_cbr{item[2]}',))
    else:
      cbrs.append(('fuse_last',) if item[0] == 'last' else ('single_cbr',))
  dense = tuple(f'dense{i + 1}' for i in range(len(model.head_hidden))) + ('logits',)
  return {
      'conv2d': [p + ('conv',) for p in cbrs],
      'batch_normalization': [p + ('bn',) for p in cbrs],
      'instance_normalization': [(f'features_{s}', f'in{i}') for i in (1, 2)
                                 for s in 'ab'],
      # Heads side by side: dense1 of out0, of out1, then dense2, then logits.
      'dense': [(h, d) for d in dense for h in ('multi_head', 'single_head')],
  }
