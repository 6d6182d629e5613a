"""Classification heads (paper Sec. 3.4, REFERENCE "Heads")."""
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.layers import CBL, glorot_uniform, zeros


class MatchHead(nn.Module):
  """GlobalAvgPool -> Dense 512 ReLU -> Dense 256 ReLU -> Dense 1; returns the logit (B,)."""
  hidden: Sequence[int] = (512, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.mean(x, axis=(1, 2))
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, kernel_init=glorot_uniform, bias_init=zeros,
                           dtype=self.dtype, name=f'dense{i + 1}')(x))
      self.sow('intermediates', f'fc{width}', x)
    x = nn.Dense(1, kernel_init=glorot_uniform, bias_init=zeros,
                 dtype=self.dtype, name='logit')(x)
    return x[:, 0].astype(jnp.float32)


class ModuleHead(nn.Module):
  """Head on a FIL shared sum s_i: CBL(c) -> CBL(c) -> MatchHead."""
  features: int
  hidden: Sequence[int] = (512, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = CBL(self.features, dtype=self.dtype, name='cbl1')(x, train)
    x = CBL(self.features, dtype=self.dtype, name='cbl2')(x, train)
    return MatchHead(self.hidden, dtype=self.dtype, name='head')(x)
