"""EFR-Net: four ECA-gated feature nets, difference and product branches (official network_models/EFR.py).

Feature nets 1-4 (no weight sharing) see [a, b, a, b]. Each has four blocks of
[conv3x3 -> BN -> LeakyReLU(0.1)] x 2 -> MaxPool 2 -> 3-axis ECA gate
(official imp_eca). sub = CBL(|f1 - f2|), mul = CBL(f3 * f4),
cat = CBL(concat[sub, mul]); each gets GAP -> Dense 512 -> Dense 256 -> Dense 1
(fixtures/keras_baselines/EFR/README.md).

Outputs of `EFRNet()(xa, xb, train)`, sigmoid logits (N,):
  'cat' (Keras out0, the test score), 'sub' (out1), 'mul' (out2).
With `score_only=True` only the 'cat' path runs and returns its logit.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.heads import MatchHead, probability_fn
from rrl_jax.models.layers import CBL, max_pool2
from rrl_jax.models.mgla import DimensionGate, mgla_kernel_size
from rrl_jax.models.rrl_net import prepare_pair

OUTPUT_NAMES = ('cat', 'sub', 'mul')


class ECA3(nn.Module):
  """imp_eca: plain-mean ECA gates along H, W and C; out = x * g_h * g_w * g_c.

  The H descriptor is the mean over W and C of each row (Keras: permute to
  (W, C, H) then GlobalAveragePooling2D), W likewise, C the usual GAP. Each goes
  through its own Conv1D(1, k, 'same', bias) + sigmoid, k = mgla_kernel_size(L).
  Conv order (height, width, channel) is the official creation order.
  """
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, h, w, c = x.shape
    xf = x.astype(jnp.float32)
    gate_h = DimensionGate(mgla_kernel_size(h), name='height')(jnp.mean(xf, (2, 3)))
    gate_w = DimensionGate(mgla_kernel_size(w), name='width')(jnp.mean(xf, (1, 3)))
    gate_c = DimensionGate(mgla_kernel_size(c), name='channel')(jnp.mean(xf, (1, 2)))
    for name, gate in (('gate_h', gate_h), ('gate_w', gate_w), ('gate_c', gate_c)):
      self.sow('intermediates', name, gate)
    out = (xf * gate_h[:, :, None, None] * gate_w[:, None, :, None]
           * gate_c[:, None, None, :])
    return out.astype(self.dtype or x.dtype)


class FeatureNet(nn.Module):
  """Four blocks: CBL(c) -> CBL(c) -> MaxPool 2x2/2 -> ECA3; output 4x4xwidths[-1]."""
  widths: Sequence[int] = (32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, width in enumerate(self.widths):
      x = CBL(width, dtype=self.dtype, name=f'block{i + 1}_cbl1')(x, train)
      self.sow('intermediates', f'cbl1_out{i + 1}', x)
      x = CBL(width, dtype=self.dtype, name=f'block{i + 1}_cbl2')(x, train)
      x = ECA3(dtype=self.dtype, name=f'block{i + 1}_eca')(max_pool2(x))
      self.sow('intermediates', f'gated{i + 1}', x)
    return x


class EFRNet(nn.Module):
  """EFR-Net (official EFR.py).

  Attributes:
    widths: feature-net block widths; the sub/mul convs use widths[-1] and the
      cat conv 2 * widths[-1].
    head_hidden: hidden widths of the three heads' MLPs.
    patch_size: input patch side.
    dtype: computation dtype (parameters stay float32).
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  head_hidden: Sequence[int] = (512, 256)
  patch_size: int = 64
  dtype: Optional[Any] = None

  score_output = 'cat'
  output_names = OUTPUT_NAMES

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa, xb = prepare_pair(xa, xb, self.patch_size, self.dtype)
    widths, dtype = tuple(self.widths), self.dtype
    f = [FeatureNet(widths, dtype, name=f'features{i + 1}')(x, train)
         for i, x in enumerate((xa, xb, xa, xb))]
    product = f[2] * f[3]  # Multiply()([f3, f4])
    self.sow('intermediates', 'product', product)
    sub = CBL(widths[-1], dtype=dtype, name='sub_cbl')(jnp.abs(f[0] - f[1]), train)
    mul = CBL(widths[-1], dtype=dtype, name='mul_cbl')(product, train)
    # Concatenate([sub, mul]): the difference branch comes first.
    cat = CBL(2 * widths[-1], dtype=dtype, name='cat_cbl')(
        jnp.concatenate([sub, mul], -1), train)
    self.sow('intermediates', 'cat', cat)
    outputs = {'cat': MatchHead(self.head_hidden, dtype, name='cat_head')(cat)}
    if score_only:
      return outputs['cat']
    outputs['sub'] = MatchHead(self.head_hidden, dtype, name='sub_head')(sub)
    outputs['mul'] = MatchHead(self.head_hidden, dtype, name='mul_head')(mul)
    return outputs

  match_probability = staticmethod(probability_fn('cat'))


def keras_layer_plan(model: EFRNet) -> Dict[str, List[Tuple[str, ...]]]:
  """Flax module paths per Keras layer type, in the official model.layers order.

  That is the order of the fixture's layers.tsv and of a Keras HDF5 file's
  layer_names (rrl_jax/keras_import.py): Keras sorts layers by depth, so the
  four feature nets interleave (layer i of nets 1, 2, 3, 4, then layer i + 1);
  each block's gates come per net as (height, width, channel); the three heads
  interleave as (cat, sub, mul) per Dense level.
  """
  n = len(model.widths)
  nets = [f'features{i}' for i in range(1, 5)]
  cbls = [(net, f'block{b}_cbl{j}') for b in range(1, n + 1) for j in (1, 2)
          for net in nets]
  cbls += [('sub_cbl',), ('mul_cbl',), ('cat_cbl',)]
  dense = tuple(f'dense{i + 1}' for i in range(len(model.head_hidden))) + ('logit',)
  return {
      'conv2d': [p + ('conv',) for p in cbls],
      'batch_normalization': [p + ('bn',) for p in cbls],
      'conv1d': [(net, f'block{b}_eca', g, 'conv1d') for b in range(1, n + 1)
                 for net in nets for g in ('height', 'width', 'channel')],
      'dense': [(h, d) for d in dense for h in ('cat_head', 'sub_head', 'mul_head')],
  }
