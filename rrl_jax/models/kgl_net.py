"""KGL-Net: knowledge-guided learning for cross-spectral patch matching.

Yu, Liu, Zhao, Yue, "Why and How: Knowledge-Guided Learning for Cross-Spectral
Image Patch Matching" (arXiv 2412.11161); official PyTorch code
YuChuang1205/KGL-Net (model/KGLNet.py, model/module.py). Layouts here are NHWC;
rrl_jax/torch_import.py maps the official state_dicts onto these variables.

Descriptor network (official `feature_KGL`), per input x_a, x_b:
  com stem (layers 1-4, one stem per input: com1 for a, com2 for b) ->
    shared com layers 5-8 -> 8x8 conv + BatchNorm -> desc_raw -> L2 -> desc
    private dif layers 5-8 (dif1 for a, dif2 for b)   -> dif
  Each layer: conv3x3 (stride 2 in layers 3, 5, 7) -> FRN -> TLU (-> ECA in the
  even layers); layer 1 first normalises the input with FRN -> TLU.
Metric network (official `feature_KGL_metric`): |dif_a - dif_b| -> conv3x3 ->
  FRN -> TLU -> global average pool -> 256-512-256-1 MLP (ReLU) -> logit;
  P(match) = sigmoid(logit), the official net's output.

`KGLNet()(xa, xb, train)` returns the descriptors and features the objective
needs (rrl_jax/training/losses.py, `kgl_objective`) plus the metric logits on
the positives ('match', the score) and on the in-batch hardest negatives
('mined_match', the official `make_metric_dataset`). `score_only=True` runs the
stems, the dif paths and the metric network only (MLPP: no descriptor head).
"""
from typing import Any, Dict, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.heads import probability_fn
from rrl_jax.models.layers import BATCH_MOMENTS
from rrl_jax.models.mgla import mgla_kernel_size
from rrl_jax.models.rrl_net import prepare_pair

LOSS_NAMES = ('hynet', 'metric_bce', 'consistency_a', 'consistency_b')
DESCRIPTOR_OUTPUTS = ('desc_a', 'desc_b')
L2_EPS = 1e-10  # official desc_l2norm
DIST_EPS = 1e-6  # official eps_sqrt (distance matrix, descriptor norms)
FALSE_NEGATIVE_DIST = 8e-3  # official dist_th (HardNet)

# torch.nn.init.kaiming_normal_(mode='fan_out', nonlinearity='leaky_relu'),
# slope 0: std sqrt(2 / fan_out), the official init_weights2 for Conv2d and Linear.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# PyTorch's default Conv1d init (the ECA conv is not re-initialised officially).
torch_default = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


class FRN(nn.Module):
  """Filter Response Normalization (Singh & Krishnan 2019), official module.FRN.

  x * rsqrt(mean_HW(x^2) + |eps|) * scale + bias; eps is the official constant
  buffer (not learnt), scale/bias per channel.
  """
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    nu2 = jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True)
    x = x * jax.lax.rsqrt(nu2 + abs(self.eps))
    return scale * x + bias


class TLU(nn.Module):
  """Thresholded linear unit max(x, tau), tau per channel, initialised to -1."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    tau = self.param('tau', nn.initializers.constant(-1.0), (x.shape[-1],),
                     jnp.float32)
    return jnp.maximum(x, tau)


class ECA(nn.Module):
  """Efficient channel attention: x * sigmoid(Conv1d_k(GAP(x))) over channels.

  Kernel k from the ECA formula (mgla_kernel_size, gamma 2, b 1), zero padding
  k // 2, no bias.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    k = mgla_kernel_size(c)
    pooled = jnp.mean(x, axis=(1, 2))[..., None]  # (N, C, 1): length C
    gate = nn.Conv(1, (k,), padding=[(k // 2, k // 2)], use_bias=False,
                   kernel_init=torch_default, name='conv')(pooled)
    return x * nn.sigmoid(gate[..., 0])[:, None, None, :]


class KGLLayer(nn.Module):
  """[FRN -> TLU ->] conv3x3 (pad 1) -> FRN -> TLU [-> ECA]: one official layerN."""
  features: int
  stride: int = 1
  input_norm: bool = False
  eca: bool = False
  frn_eps: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.input_norm:
      x = TLU(name='tlu_in')(FRN(self.frn_eps, name='frn_in')(x))
    x = nn.Conv(self.features, (3, 3), strides=(self.stride, self.stride),
                padding=[(1, 1), (1, 1)], kernel_init=kaiming_fan_out,
                bias_init=nn.initializers.zeros, name='conv')(x)
    x = TLU(name='tlu')(FRN(self.frn_eps, name='frn')(x))
    return ECA(name='eca')(x) if self.eca else x


class TorchBatchNorm(nn.Module):
  """torch.nn.BatchNorm2d over the last axis (eps 1e-5, momentum 0.1).

  Training: normalise with the biased batch variance; running statistics move
  by momentum towards the batch mean and the unbiased (n / (n - 1)) variance.
  """
  momentum: float = 0.1
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    mean_v = self.variable('batch_stats', 'mean', jnp.zeros, (c,), jnp.float32)
    var_v = self.variable('batch_stats', 'var', jnp.ones, (c,), jnp.float32)
    if train:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(x, axes)
      var = jnp.mean(jnp.square(x - mean), axes)
      n = x.size // c
      if not self.is_initializing():
        unbiased = var * (n / max(n - 1, 1))
        # For precise-BN (rrl_jax/training/bn_recalibration.py), as layers.BatchNorm.
        self.sow(BATCH_MOMENTS, 'mean', mean)
        self.sow(BATCH_MOMENTS, 'var', unbiased)
        m = self.momentum
        mean_v.value = (1 - m) * mean_v.value + m * mean
        var_v.value = (1 - m) * var_v.value + m * unbiased
    else:
      mean, var = mean_v.value, var_v.value
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


def l2_normalize(desc: jax.Array) -> jax.Array:
  """Official desc_l2norm: desc / sqrt(sum(desc^2) + 1e-10)."""
  return desc / jnp.sqrt(jnp.sum(jnp.square(desc), -1, keepdims=True) + L2_EPS)


def distance_matrix(x: jax.Array, y: jax.Array) -> jax.Array:
  """Official cal_l2_distance_matrix of unit vectors: sqrt(|2 (1 - x.y)| + 1e-6)."""
  return jnp.sqrt(jnp.abs(2.0 * (1.0 - x @ y.T)) + DIST_EPS)


def hardest_negatives(desc_a: jax.Array, desc_b: jax.Array) -> Dict[str, jax.Array]:
  """In-batch hardest negatives (official Loss_HyNet_metric.sort_distance).

  Distances of the matching pair (the diagonal) and of near-duplicates
  (<= 8e-3) are pushed out by +2 before the argmin. Returns the distance
  matrices (differentiable) and the (stopped) argmin indices: 'LL' per row of
  a-a, 'RR' per column of b-b, 'LR' per row and 'RL' per column of a-b. 'LR'
  (for each a, the hardest b) is the metric network's negative.
  """
  mats = {'L': distance_matrix(desc_a, desc_a), 'R': distance_matrix(desc_b, desc_b),
          'LR': distance_matrix(desc_a, desc_b)}
  eye = jnp.eye(desc_a.shape[0], dtype=desc_a.dtype)

  def pushed(d):
    d = jax.lax.stop_gradient(d) + 2.0 * eye
    return d + 2.0 * (d <= FALSE_NEGATIVE_DIST).astype(d.dtype)

  lr = pushed(mats['LR'])
  idx = {'LL': jnp.argmin(pushed(mats['L']), axis=1),
         'RR': jnp.argmin(pushed(mats['R']), axis=0),
         'LR': jnp.argmin(lr, axis=1), 'RL': jnp.argmin(lr, axis=0)}
  return {**mats, **{f'index_{k}': v for k, v in idx.items()}}


class KGLDescriptor(nn.Module):
  """The official feature_KGL (names follow its layers)."""
  widths: Sequence[int] = (32, 64, 128, 256)
  dim_desc: int = 128
  frn_eps: float = 1e-6

  def setup(self):
    w, eps = tuple(self.widths), self.frn_eps
    # (features, stride, eca) of layers 2..8; layer 1 is KGLLayer(w[0], input_norm).
    plan = {2: (w[0], 1, True), 3: (w[1], 2, False), 4: (w[1], 1, True),
            5: (w[2], 2, False), 6: (w[2], 1, True), 7: (w[3], 2, False),
            8: (w[3], 1, True)}

    def layer(i, name):
      if i == 1:
        return KGLLayer(w[0], input_norm=True, frn_eps=eps, name=name)
      f, s, e = plan[i]
      return KGLLayer(f, s, eca=e, frn_eps=eps, name=name)

    self.stem1 = [layer(i, f'layer{i}_com1') for i in range(1, 5)]
    self.stem2 = [layer(i, f'layer{i}_com2') for i in range(1, 5)]
    self.com = [layer(i, f'layer{i}_com1') for i in range(5, 9)]
    self.dif1 = [layer(i, f'layer{i}_dif1') for i in range(5, 9)]
    self.dif2 = [layer(i, f'layer{i}_dif2') for i in range(5, 9)]
    self.head_conv = nn.Conv(self.dim_desc, (8, 8), padding='VALID',
                             kernel_init=kaiming_fan_out,
                             bias_init=nn.initializers.zeros, name='layer9_com1_conv')
    self.head_bn = TorchBatchNorm(name='layer9_com1_bn')

  @staticmethod
  def _run(layers, x):
    for f in layers:
      x = f(x)
    return x

  def __call__(self, xa, xb, train: bool = False, score_only: bool = False):
    low_a, low_b = self._run(self.stem1, xa), self._run(self.stem2, xb)
    out = {'dif_a': self._run(self.dif1, low_a), 'dif_b': self._run(self.dif2, low_b)}
    if score_only:
      return out
    for side, low in (('a', low_a), ('b', low_b)):
      com = self._run(self.com, low)
      # The shared head BatchNorm runs once per side (two updates per step).
      raw = self.head_bn(self.head_conv(com), train).reshape(com.shape[0], -1)
      out.update({f'com_{side}': com, f'desc_raw_{side}': raw,
                  f'desc_{side}': l2_normalize(raw)})
    return out


class KGLMetric(nn.Module):
  """The official feature_KGL_metric, returning the logit before its sigmoid."""
  features: int = 256
  hidden: Sequence[int] = (512, 256)
  frn_eps: float = 1e-6

  @nn.compact
  def __call__(self, dif_a: jax.Array, dif_b: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, (3, 3), padding=[(1, 1), (1, 1)],
                kernel_init=kaiming_fan_out, bias_init=nn.initializers.zeros,
                name='dif_conv')(jnp.abs(dif_a - dif_b))
    x = TLU(name='dif_tlu')(FRN(self.frn_eps, name='dif_frn')(x))
    x = jnp.mean(x, axis=(1, 2))
    for i, width in enumerate(tuple(self.hidden) + (1,)):
      x = nn.Dense(width, kernel_init=kaiming_fan_out,
                   bias_init=nn.initializers.zeros, name=f'fc{i + 1}')(x)
      if i < len(self.hidden):
        x = nn.relu(x)
    return x[:, 0]


class KGLNet(nn.Module):
  """KGL-Net: descriptor network + metric network (official defaults).

  Attributes:
    widths: channels of the four stages (official 32, 64, 128, 256); the
      metric network's conv has widths[-1].
    dim_desc: descriptor length.
    metric_hidden: hidden widths of the metric MLP.
    frn_eps: the FRN eps buffer (used as |eps|).
    patch_size: input side (the 8x8 head needs 64).
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  dim_desc: int = 128
  metric_hidden: Sequence[int] = (512, 256)
  frn_eps: float = 1e-6
  patch_size: int = 64
  dtype: Optional[Any] = None

  score_output = 'match'
  output_names = LOSS_NAMES  # the objective's terms (training/losses.py)
  descriptor_outputs = DESCRIPTOR_OUTPUTS

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa, xb = prepare_pair(xa, xb, self.patch_size, jnp.float32)
    desc = KGLDescriptor(tuple(self.widths), self.dim_desc, self.frn_eps,
                         name='descriptor')
    metric = KGLMetric(self.widths[-1], tuple(self.metric_hidden), self.frn_eps,
                       name='metric')
    out = desc(xa, xb, train, score_only)
    logit = metric(out['dif_a'], out['dif_b'])
    if score_only:
      return logit
    out['match'] = logit
    if train:
      # The official make_metric_dataset: each a with its hardest b (LR row).
      hard = hardest_negatives(out['desc_a'], out['desc_b'])['index_LR']
      out['mined_match'] = metric(out['dif_a'], out['dif_b'][hard])
    return out

  match_probability = staticmethod(probability_fn('match'))

