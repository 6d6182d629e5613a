"""ALFE: the per-branch autoencoder (paper Sec. 3.2)."""
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax

from rrl_jax.models.layers import CBL, conv3x3, max_pool2, upsample_bilinear_x2
from rrl_jax.models.mgla import MGLA


class EncoderStage(nn.Module):
  """CBL(c) -> [MaxPool 2] -> MGLA."""
  features: int
  pool: bool
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = CBL(self.features, dtype=self.dtype, name='cbl')(x, train)
    if self.pool:
      x = max_pool2(x)
    return MGLA(dtype=self.dtype, name='mgla')(x)


class Encoder(nn.Module):
  """Five encoder stages; returns the MGLA outputs f1..f5 (64x64 .. 4x4)."""
  widths: Sequence[int] = (16, 32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, ...]:
    features = []
    for i, width in enumerate(self.widths):
      x = EncoderStage(width, pool=i > 0, dtype=self.dtype,
                       name=f'stage{i + 1}')(x, train)
      self.sow('intermediates', f'f{i + 1}', x)
      features.append(x)
    return tuple(features)


class DecoderStage(nn.Module):
  """CBL(c) -> bilinear x2 (TF1 rule) -> MGLA."""
  features: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = CBL(self.features, dtype=self.dtype, name='cbl')(x, train)
    return MGLA(dtype=self.dtype, name='mgla')(upsample_bilinear_x2(x))


class Decoder(nn.Module):
  """Decoder from f5 back to a 64x64x1 sigmoid reconstruction of the input.

  `widths` are the encoder widths; the up stages use widths[-2::-1]
  (128, 64, 32, 16 by default). No stop-gradient: reconstruction trains the encoder.
  """
  widths: Sequence[int] = (16, 32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, f5: jax.Array, train: bool) -> jax.Array:
    x = f5
    for width in self.widths[-2::-1]:
      size = x.shape[1] * 2
      x = DecoderStage(width, dtype=self.dtype, name=f'up{size}')(x, train)
      self.sow('intermediates', f'd{size}', x)
    x = conv3x3(1, dtype=self.dtype, name='recon_conv')(x)
    return nn.sigmoid(x.astype('float32'))
