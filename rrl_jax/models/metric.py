"""The metric network on FIL's private differences (paper Sec. 3.3)."""
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.layers import CBL, max_pool2


class MetricStage(nn.Module):
  """CBL(c) -> CBL(c), 3x3."""
  features: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = CBL(self.features, dtype=self.dtype, name='cbl1')(x, train)
    return CBL(self.features, dtype=self.dtype, name='cbl2')(x, train)


class MetricNetwork(nn.Module):
  """m1 = stage(d1); m_i = stage(concat(MaxPool(m_{i-1}), d_i)); returns m1..m5."""
  widths: Sequence[int] = (32, 64, 128, 256, 512)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, diffs: Sequence[jax.Array],
               train: bool) -> Tuple[jax.Array, ...]:
    outputs = []
    x = None
    for i, (width, d) in enumerate(zip(self.widths, diffs)):
      x = d if x is None else jnp.concatenate([max_pool2(x), d], axis=-1)
      x = MetricStage(width, dtype=self.dtype, name=f'stage{i + 1}')(x, train)
      self.sow('intermediates', f'm{i + 1}', x)
      outputs.append(x)
    return tuple(outputs)
