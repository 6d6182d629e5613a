"""Classification heads (paper Sec. 3.4) and P(match)."""
from typing import Any, Callable, Dict, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.layers import CBL, dense


class MatchHead(nn.Module):
  """GlobalAvgPool -> Dense 512 ReLU -> Dense 256 ReLU -> Dense 1; returns the logit (B,)."""
  hidden: Sequence[int] = (512, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.mean(x, axis=(1, 2))
    for i, width in enumerate(self.hidden):
      x = nn.relu(dense(width, self.dtype, f'dense{i + 1}')(x))
      self.sow('intermediates', f'fc{width}', x)
    x = dense(1, self.dtype, 'logit')(x)
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


def probability_fn(score_output: str, two_class: bool = False
                   ) -> Callable[[Union[Dict[str, jax.Array], jax.Array]], jax.Array]:
  """A network's P(match) from its outputs dict or its score_only logit z.

  From the dict: sigmoid of outputs[score_output], or softmax(...)[:, 1] when
  that output holds two class logits (two_class; their score_only z is
  logit1 - logit0, so both forms agree). From z: sigmoid(z).
  """
  def match_probability(outputs_or_score):
    if isinstance(outputs_or_score, dict):
      out = outputs_or_score[score_output].astype(jnp.float32)
      return jax.nn.softmax(out, -1)[:, 1] if two_class else jax.nn.sigmoid(out)
    return jax.nn.sigmoid(jnp.asarray(outputs_or_score, jnp.float32))

  kind = f'softmax({score_output})[:, 1]' if two_class else f'sigmoid({score_output})'
  match_probability.__doc__ = (f'P(match): {kind} from the outputs, or sigmoid '
                               'of the score_only logit.')
  return match_probability
