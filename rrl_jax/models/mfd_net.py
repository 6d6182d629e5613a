"""MFD-Net: the official eight-branch multi-level feature-difference network.

The official repository's network_models/MFD.py (fixture notes:
../shared/fixtures/keras_baselines/MFD/README.md). Eight independent VGG-like
feature nets are fed [a, b, a, b, a, b, a, b]; pair k = nets (2k-1, 2k) drives
difference branch k, which accumulates |tap_a - tap_b| of the raw conv1/conv2
outputs (before BN and ReLU) and of pooling1..4. Each branch has its own
dense head; the four branches' last maps are fused for the score.

Outputs (dict, sigmoid logits (N,), in the official model.outputs order):
fused (the test score), branch1, branch2, branch3, branch4. `score_only=True`
returns the fused logit and touches only the test-score path (the branch
heads are off it). Defaults are the official widths (151 M parameters).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.fil_net import KerasGraph
from rrl_jax.models.heads import probability_fn
from rrl_jax.models.layers import BatchNorm, conv1x1, conv3x3, dense, max_pool2
from rrl_jax.models.rrl_net import prepare_pair

OUTPUT_NAMES = ('fused', 'branch1', 'branch2', 'branch3', 'branch4')
N_BRANCHES = 4


class FeatureNet(nn.Module):
  """conv1 -> BN -> ReLU -> [conv_k -> BN -> ReLU -> pool_{k-1}] for k = 2..5.

  Returns the taps (conv1 raw, conv2 raw, pool1, pool2, pool3, pool4); the raw
  taps are conv + bias, before BN.
  """
  widths: Sequence[int] = (32, 64, 128, 256, 512)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, ...]:
    taps = []
    for i, width in enumerate(self.widths):
      x = conv3x3(width, dtype=self.dtype, name=f'conv{i + 1}')(x)
      if i < 2:
        taps.append(x)
      x = nn.relu(BatchNorm(dtype=self.dtype, name=f'bn{i + 1}')(x, train))
      if i > 0:
        x = max_pool2(x)
        taps.append(x)
    self.sow('intermediates', 'conv1_out', taps[0])
    self.sow('intermediates', 'pool4_out', taps[-1])
    return tuple(taps)


class DiffBranch(nn.Module):
  """x_k = ReLU(BN(conv(concat(|tap_k(a) - tap_k(b)|, pool(x_{k-1}))))).

  1x1 convs, 3x3 for the last; every state but the last is max-pooled before
  the next level (none after level 0). Returns the last state, un-pooled.
  """
  widths: Sequence[int] = (32, 96, 160, 288, 544, 1056)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, taps_a, taps_b, train: bool) -> jax.Array:
    x = None
    last = len(self.widths) - 1
    for k, (width, ta, tb) in enumerate(zip(self.widths, taps_a, taps_b)):
      d = jnp.abs(ta - tb)
      if x is not None:
        d = jnp.concatenate([d, max_pool2(x) if k > 1 else x], axis=-1)
      conv = conv3x3 if k == last else conv1x1
      x = conv(width, dtype=self.dtype, name=f'conv{k}')(d)
      x = nn.relu(BatchNorm(dtype=self.dtype, name=f'bn{k}')(x, train))
      if k == 0:
        self.sow('intermediates', 'x0', x)
    return x


class DenseHead(nn.Module):
  """MaxPool 2x2 -> Flatten (H, W, C order) -> Dense ReLU stack -> Dense 1 logit (N,)."""
  hidden: Sequence[int] = (2048, 1024, 512, 512, 128, 128, 64)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = max_pool2(x)
    x = x.reshape(x.shape[0], -1)
    self.sow('intermediates', 'flatten', x)
    for i, width in enumerate(self.hidden):
      x = nn.relu(dense(width, self.dtype, f'dense{i + 1}')(x))
    self.sow('intermediates', 'last_hidden', x)
    x = dense(1, self.dtype, 'logit')(x)
    return x[:, 0].astype(jnp.float32)


class MFDNet(nn.Module):
  """MFD-Net (official network_models/MFD.py).

  Attributes:
    feature_widths: conv1..conv5 widths of each of the eight feature nets.
    diff_widths: difference-branch widths per level (officially the running
      sums 32, 32+64, ..., i.e. each level's tap width plus the previous state).
    fuse_width: width of the 3x3 conv on the four concatenated branch states.
    head_hidden: hidden Dense widths of every head.
  """
  feature_widths: Sequence[int] = (32, 64, 128, 256, 512)
  diff_widths: Sequence[int] = (32, 96, 160, 288, 544, 1056)
  fuse_width: int = 1024
  head_hidden: Sequence[int] = (2048, 1024, 512, 512, 128, 128, 64)
  patch_size: int = 64
  dtype: Optional[Any] = None

  output_names = OUTPUT_NAMES
  score_output = 'fused'

  match_probability = staticmethod(probability_fn('fused'))

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xs = prepare_pair(xa, xb, self.patch_size, self.dtype)
    if len(self.feature_widths) != 5 or len(self.diff_widths) != 6:
      raise ValueError(
          f'MFDNet needs 5 feature_widths and 6 diff_widths (conv1, conv2, '
          f'pooling1..4 taps), got {tuple(self.feature_widths)} and '
          f'{tuple(self.diff_widths)}.')
    dtype = self.dtype
    taps = [FeatureNet(self.feature_widths, dtype=dtype, name=f'features{j + 1}')(
        xs[j % 2], train) for j in range(2 * N_BRANCHES)]
    states = [DiffBranch(self.diff_widths, dtype=dtype, name=f'diff{k + 1}')(
        taps[2 * k], taps[2 * k + 1], train) for k in range(N_BRANCHES)]
    fused = jnp.concatenate(states, axis=-1)
    self.sow('intermediates', 'fuse_input', fused)
    fused = conv3x3(self.fuse_width, dtype=dtype, name='fuse_conv')(fused)
    fused = nn.relu(BatchNorm(dtype=dtype, name='fuse_bn')(fused, train))
    score = DenseHead(self.head_hidden, dtype=dtype, name='fused_head')(fused)
    if score_only:
      return score
    outputs: Dict[str, jax.Array] = {'fused': score}
    for k, state in enumerate(states):
      outputs[f'branch{k + 1}'] = DenseHead(self.head_hidden, dtype=dtype,
                                            name=f'head{k + 1}')(state)
    return outputs


match_probability = MFDNet.match_probability


def _keras_graph(model: MFDNet) -> Tuple[KerasGraph, List[int]]:
  """MFD.py's layer graph over our module paths; returns (graph, outputs)."""
  g = KerasGraph()
  n_hidden = len(model.head_hidden)

  def feature_net(j):
    f = f'features{j}'
    x = g.add('InputLayer')
    taps = []
    for i in range(1, 6):
      x = g.add('Conv2D', x, path=(f, f'conv{i}'))
      if i < 3:
        taps.append(x)
      x = g.add('ReLU', g.add('BatchNormalization', x, path=(f, f'bn{i}')))
      if i > 1:
        x = g.add('MaxPooling2D', x)
        taps.append(x)
    return taps

  def dense_head(x, path):
    x = g.add('Flatten', g.add('MaxPooling2D', x))
    for name in [f'dense{i + 1}' for i in range(n_hidden)] + ['logit']:
      x = g.add('Dense', x, path=(path, name))
    return x

  taps = [feature_net(j) for j in range(1, 2 * N_BRANCHES + 1)]
  states, heads = [], []
  for k in range(1, N_BRANCHES + 1):
    b, x = f'diff{k}', None
    for level, (ta, tb) in enumerate(zip(taps[2 * k - 2], taps[2 * k - 1])):
      d = g.add('Lambda', g.add('Subtract', ta, tb))
      if x is not None:
        d = g.add('Concatenate', d, g.add('MaxPooling2D', x) if level > 1 else x)
      x = g.add('Conv2D', d, path=(b, f'conv{level}'))
      x = g.add('ReLU', g.add('BatchNormalization', x, path=(b, f'bn{level}')))
    states.append(x)
    heads.append(dense_head(x, f'head{k}'))
  x = g.add('Conv2D', g.add('Concatenate', *states), path=('fuse_conv',))
  x = g.add('ReLU', g.add('BatchNormalization', x, path=('fuse_bn',)))
  return g, [dense_head(x, 'fused_head')] + heads


def keras_layer_plan(model: MFDNet) -> Dict[str, List[Tuple[str, ...]]]:
  """{keras type: [flax module path, ...]} in the official model.layers order."""
  g, outputs = _keras_graph(model)
  return g.plan(outputs)


def keras_layer_classes(model: MFDNet) -> List[str]:
  """Keras class of every layer in model.layers order (checked against graph.tsv)."""
  g, outputs = _keras_graph(model)
  return [g.classes[n] for n in g.layer_order(outputs)]
