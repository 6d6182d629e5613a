"""FIL: feature interaction learning between the two branches (paper Sec. 3.3)."""
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.layers import CBL, BatchNorm, conv1x1


class Gate(nn.Module):
  """sigmoid(BN(Conv1x1(c)(x)))."""
  features: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = conv1x1(self.features, dtype=self.dtype, name='conv')(x)
    x = BatchNorm(dtype=self.dtype, name='bn')(x, train)
    return nn.sigmoid(x)


class FILStage(nn.Module):
  """One FIL stage. Returns (private difference d_i, shared sum s_i).

  a = CBL1x1(f), g = Gate(f) per branch; cross terms x_A = a_A * g_B and
  x_B = a_B * g_A; d_i = concat(|x_A - a_A|, |x_B - a_B|); s_i = x_A + x_B.
  Submodule order (value_a, gate_a, value_b, gate_b) is the official creation order.
  """
  features: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, fa: jax.Array, fb: jax.Array,
               train: bool) -> Tuple[jax.Array, jax.Array]:
    a_a = CBL(self.features, kernel=1, dtype=self.dtype, name='value_a')(fa, train)
    g_a = Gate(self.features, dtype=self.dtype, name='gate_a')(fa, train)
    a_b = CBL(self.features, kernel=1, dtype=self.dtype, name='value_b')(fb, train)
    g_b = Gate(self.features, dtype=self.dtype, name='gate_b')(fb, train)
    x_a = a_a * g_b
    x_b = a_b * g_a
    private = jnp.concatenate([jnp.abs(x_a - a_a), jnp.abs(x_b - a_b)], axis=-1)
    shared = x_a + x_b
    return private, shared


class FIL(nn.Module):
  """FIL at every encoder stage; returns the tuples (d_1..d_n), (s_1..s_n)."""
  widths: Tuple[int, ...] = (16, 32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, feats_a, feats_b, train: bool):
    privates, shareds = [], []
    for i, (width, fa, fb) in enumerate(zip(self.widths, feats_a, feats_b)):
      d, s = FILStage(width, dtype=self.dtype, name=f'stage{i + 1}')(fa, fb, train)
      self.sow('intermediates', f'd{i + 1}', d)
      self.sow('intermediates', f's{i + 1}', s)
      privates.append(d)
      shareds.append(s)
    return tuple(privates), tuple(shareds)
