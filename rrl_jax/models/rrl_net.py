"""RRL-Net: the full two-branch model (paper Fig. 2).

`RRLNet(...)(xa, xb, train)` returns every training output as a dict of
OUTPUT_NAMES. With `score_only=True` it runs only the inference path
(encoders, FIL, metric network, last stage head) and returns the match logit:
applied to the pruned variables of `rrl_jax.pruning`, this is MLPP inference.

Ablation switches (defaults = the paper model), each removing one component:
`autoencoder=False` (no decoders, no reconstruction outputs), `mgla=False`
(every MGLA is the identity), `fil=False` (the metric network gets |fA - fB|
per stage instead of FIL's private differences; no module heads),
`module_heads=()`, `stage_heads=(5,)` (the final head only), and
`shared_branches=True` (one encoder/decoder for both inputs). Named variants:
rrl_jax/models/variants.py.
"""
import contextlib
from typing import Any, Dict, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.alfe import Decoder, Encoder
from rrl_jax.models.fil import FIL
from rrl_jax.models.heads import MatchHead, ModuleHead
from rrl_jax.models.metric import MetricNetwork
from rrl_jax.models.mgla import MGLA

RECON_NAMES = ('recon_a', 'recon_b')


def check_patches(x: Any, name: str, patch_size: int = 64) -> None:
  """Raises one clear ValueError unless x is a float (N, P, P, 1) batch."""
  expected = f'(N, {patch_size}, {patch_size}, 1)'
  shape = getattr(x, 'shape', None)
  dtype = getattr(x, 'dtype', None)
  if shape is None or dtype is None:
    raise ValueError(f'RRLNet input {name}: expected an array of shape '
                     f'{expected}, got {type(x).__name__}.')
  if len(shape) != 4 or tuple(shape[1:]) != (patch_size, patch_size, 1):
    raise ValueError(f'RRLNet input {name}: expected shape {expected} (NHWC, '
                     f'single-channel {patch_size}x{patch_size} patches), got '
                     f'{tuple(shape)}.')
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'RRLNet input {name}: expected a float array with values '
                     f'in [0, 1] of shape {expected}, got dtype {dtype} (divide '
                     'uint8 patches by 255).')


def prepare_pair(xa: Any, xb: Any, patch_size: int, dtype: Optional[Any]):
  """check_patches on both inputs, then both cast to the compute dtype (if any)."""
  check_patches(xa, 'xa', patch_size)
  check_patches(xb, 'xb', patch_size)
  return xa.astype(dtype or xa.dtype), xb.astype(dtype or xb.dtype)


class RRLNet(nn.Module):
  """Relational Representation Learning Network.

  Attributes:
    widths: encoder widths per stage (paper 16..256); FIL uses the same, the
      metric network twice these, the decoder widths[-2::-1].
    stage_heads: metric stages that carry a head; the last stage's head is the
      match score and is required.
    module_heads: FIL stages whose shared sum carries a module head.
    head_hidden: hidden widths of every head's MLP.
    patch_size: input patch side.
    dtype: computation dtype (parameters stay float32).
    autoencoder: build the decoders and their reconstruction outputs.
    mgla: MGLA in every encoder/decoder stage (False: identity).
    fil: FIL between the branches (False: |fA - fB| feeds the metric network).
    shared_branches: one encoder (and decoder) applied to both inputs.
  """
  widths: Sequence[int] = (16, 32, 64, 128, 256)
  stage_heads: Sequence[int] = (3, 4, 5)
  module_heads: Sequence[int] = (3, 4, 5)
  head_hidden: Sequence[int] = (512, 256)
  patch_size: int = 64
  dtype: Optional[Any] = None
  autoencoder: bool = True
  mgla: bool = True
  fil: bool = True
  shared_branches: bool = False

  @property
  def score_stage(self) -> int:
    return len(self.widths)

  @property
  def score_output(self) -> str:
    return f'stage{self.score_stage}'

  @property
  def output_names(self) -> tuple:
    return (tuple(f'stage{i}' for i in sorted(self.stage_heads))
            + tuple(f'module{i}' for i in sorted(self.module_heads))
            + (RECON_NAMES if self.autoencoder else ()))

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa_c, xb_c = prepare_pair(xa, xb, self.patch_size, self.dtype)
    if self.score_stage not in self.stage_heads:
      raise ValueError(f'stage_heads={tuple(self.stage_heads)} must include the '
                       f'last stage {self.score_stage}: its head is the match score.')
    if not self.fil and self.module_heads:
      raise ValueError(f'fil=False leaves no FIL shared sums for module_heads='
                       f'{tuple(self.module_heads)}: set module_heads=().')
    widths = tuple(self.widths)
    dtype = self.dtype
    encoder_a, encoder_b = self._branches(Encoder, 'encoder')
    with self._mgla_switch():
      feats_a = encoder_a(xa_c, train)
      feats_b = encoder_b(xb_c, train)
    if self.fil:
      privates, shareds = FIL(widths, dtype=dtype, name='fil')(
          feats_a, feats_b, train)
    else:
      privates = tuple(jnp.abs(fa - fb) for fa, fb in zip(feats_a, feats_b))
      shareds = ()
    metric = MetricNetwork(tuple(2 * w for w in widths), dtype=dtype,
                           name='metric')(privates, train)

    def stage_head(i):
      return MatchHead(self.head_hidden, dtype=dtype, name=f'stage_head{i}')(
          metric[i - 1])

    if score_only:
      return stage_head(self.score_stage)

    outputs: Dict[str, jax.Array] = {}
    for i in sorted(self.stage_heads):
      outputs[f'stage{i}'] = stage_head(i)
    for i in sorted(self.module_heads):
      outputs[f'module{i}'] = ModuleHead(widths[i - 1], self.head_hidden,
                                         dtype=dtype, name=f'module_head{i}')(
                                             shareds[i - 1], train)
    if not self.autoencoder:
      return outputs
    decoder_a, decoder_b = self._branches(Decoder, 'decoder')
    with self._mgla_switch():
      outputs['recon_a'] = decoder_a(feats_a[-1], train)
      outputs['recon_b'] = decoder_b(feats_b[-1], train)
    return outputs

  def _branches(self, cls, name: str):
    """(module for xa, module for xb): NAME_a and NAME_b, or one NAME shared."""
    if self.shared_branches:
      shared = cls(tuple(self.widths), dtype=self.dtype, name=name)
      return shared, shared
    return tuple(cls(tuple(self.widths), dtype=self.dtype, name=f'{name}_{side}')
                 for side in 'ab')

  def _mgla_switch(self):
    """mgla=False: every MGLA call returns its input (no MGLA parameters)."""
    if self.mgla:
      return contextlib.nullcontext()
    return nn.intercept_methods(_identity_mgla)


def _identity_mgla(next_fun, args, kwargs, context):
  if isinstance(context.module, MGLA) and context.method_name == '__call__':
    return args[0]
  return next_fun(*args, **kwargs)
