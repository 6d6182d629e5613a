"""FIL-Net: the official comparison network with FIL on residual features.

The official repository's network_models/FIL.py (fixture notes:
../shared/fixtures/keras_baselines/FIL/README.md). Two residual feature nets
(no weight sharing) feed the same FIL interaction, metric network and heads as
RRL-Net (rrl_jax.models.fil / metric / heads), without autoencoder or MGLA.

Outputs (dict, sigmoid logits (N,), in the official model.outputs order):
stage5, stage4, stage3 (metric heads; stage5 is the test score), module5,
module4, module3 (heads on the FIL shared sums). `score_only=True` returns the
stage5 logit and touches only the test-score path.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax

from rrl_jax.models.fil import FIL
from rrl_jax.models.heads import MatchHead, ModuleHead, probability_fn
from rrl_jax.models.layers import CBL, LEAKY_SLOPE, BatchNorm, conv3x3, max_pool2
from rrl_jax.models.metric import MetricNetwork
from rrl_jax.models.rrl_net import prepare_pair

OUTPUT_NAMES = ('stage5', 'stage4', 'stage3', 'module5', 'module4', 'module3')
_HEADS = (3, 4, 5)


class ResidualBlock(nn.Module):
  """LReLU(main + skip): main = CBL -> pool -> CBL -> Conv -> BN, skip = CBL1x1 -> pool."""
  features: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    m = CBL(self.features, dtype=self.dtype, name='cbl1')(x, train)
    m = CBL(self.features, dtype=self.dtype, name='cbl2')(max_pool2(m), train)
    m = conv3x3(self.features, dtype=self.dtype, name='conv3')(m)
    m = BatchNorm(dtype=self.dtype, name='bn3')(m, train)
    s = max_pool2(CBL(self.features, kernel=1, dtype=self.dtype, name='skip')(x, train))
    self.sow('intermediates', 'sum', m + s)
    return nn.leaky_relu(m + s, LEAKY_SLOPE)


class ResidualEncoder(nn.Module):
  """Stem 2 x CBL(widths[0]) then residual blocks widths[1:]; returns f1..f5."""
  widths: Sequence[int] = (32, 32, 64, 128, 256)
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, ...]:
    x = CBL(self.widths[0], dtype=self.dtype, name='stem1')(x, train)
    self.sow('intermediates', 'stem1_out', x)
    x = CBL(self.widths[0], dtype=self.dtype, name='stem2')(x, train)
    feats = [x]
    for i, width in enumerate(self.widths[1:]):
      x = ResidualBlock(width, dtype=self.dtype, name=f'block{i + 2}')(x, train)
      feats.append(x)
    for i, f in enumerate(feats):
      self.sow('intermediates', f'f{i + 1}', f)
    return tuple(feats)


class FILNet(nn.Module):
  """FIL-Net (official network_models/FIL.py).

  Attributes:
    widths: feature-net widths per level (stem, then the four residual blocks);
      the FIL stages and module heads use the same.
    metric_widths: metric-network width per level.
    head_hidden: hidden widths of every head's MLP.
  """
  widths: Sequence[int] = (32, 32, 64, 128, 256)
  metric_widths: Sequence[int] = (64, 128, 256, 512, 1024)
  head_hidden: Sequence[int] = (512, 256)
  patch_size: int = 64
  dtype: Optional[Any] = None

  output_names = OUTPUT_NAMES
  score_output = 'stage5'

  match_probability = staticmethod(probability_fn('stage5'))

  @nn.compact
  def __call__(self, xa: jax.Array, xb: jax.Array, train: bool = False,
               score_only: bool = False):
    xa, xb = prepare_pair(xa, xb, self.patch_size, self.dtype)
    if len(self.widths) != 5 or len(self.metric_widths) != 5:
      raise ValueError(f'FILNet needs 5 widths and 5 metric_widths, got '
                       f'{tuple(self.widths)} and {tuple(self.metric_widths)}.')
    widths, dtype = tuple(self.widths), self.dtype
    feats_a = ResidualEncoder(widths, dtype=dtype, name='encoder_a')(xa, train)
    feats_b = ResidualEncoder(widths, dtype=dtype, name='encoder_b')(xb, train)
    privates, shareds = FIL(widths, dtype=dtype, name='fil')(feats_a, feats_b, train)
    metric = MetricNetwork(tuple(self.metric_widths), dtype=dtype,
                           name='metric')(privates, train)

    def stage_head(i):
      return MatchHead(self.head_hidden, dtype=dtype, name=f'stage_head{i}')(
          metric[i - 1])

    if score_only:
      return stage_head(5)
    outputs: Dict[str, jax.Array] = {}
    for i in _HEADS[::-1]:
      outputs[f'stage{i}'] = stage_head(i)
    for i in _HEADS[::-1]:
      outputs[f'module{i}'] = ModuleHead(widths[i - 1], self.head_hidden,
                                         dtype=dtype, name=f'module_head{i}')(
                                             shareds[i - 1], train)
    return outputs


match_probability = FILNet.match_probability


# ---------------------------------------------------------------------------
# Keras layer order (for rrl_jax.keras_import).

_PLAN_TYPES = {'Conv2D': 'conv2d', 'Conv1D': 'conv1d', 'Dense': 'dense',
               'BatchNormalization': 'batch_normalization'}


class KerasGraph:
  """The official Keras layer graph, recorded to reproduce `model.layers` order.

  Keras (2.2 and tf_keras alike) orders a functional model's layers by
  decreasing depth (longest path to an output), ties broken by first discovery
  in a depth-first walk from the outputs, inputs in call order. That order
  interleaves parallel branches; it is the order of layers.tsv rows and of an
  HDF5 file's layer_names. Each network describes its Keras graph with `add`
  (every layer, weighted or not) and gets its plan from `plan`.
  """

  def __init__(self):
    self.classes: List[str] = []
    self.paths: List[Optional[Tuple[str, ...]]] = []
    self.inbound: List[Tuple[int, ...]] = []

  def add(self, cls: str, *inputs: int, path: Tuple[str, ...] = None) -> int:
    self.classes.append(cls)
    self.paths.append(path)
    self.inbound.append(tuple(inputs))
    return len(self.classes) - 1

  def layer_order(self, outputs: Sequence[int]) -> List[int]:
    """Layer ids in Keras model.layers order."""
    index: Dict[int, int] = {}
    post: List[int] = []
    done = set()
    stack = [(o, False) for o in reversed(outputs)]
    while stack:                      # iterative pre/post-order DFS
      node, expanded = stack.pop()
      if expanded:
        if node not in done:
          done.add(node)
          post.append(node)
        continue
      if node in done:
        continue
      index.setdefault(node, len(index))
      stack.append((node, True))
      stack.extend((i, False) for i in reversed(self.inbound[node]))
    depth: Dict[int, int] = {}
    for node in reversed(post):
      d = depth.setdefault(node, 0)
      for i in self.inbound[node]:
        depth[i] = max(depth.get(i, 0), d + 1)
    return sorted(index, key=lambda n: (-depth[n], index[n]))

  def plan(self, outputs: Sequence[int]) -> Dict[str, List[Tuple[str, ...]]]:
    plan: Dict[str, List[Tuple[str, ...]]] = {}
    for node in self.layer_order(outputs):
      ktype = _PLAN_TYPES.get(self.classes[node])
      if ktype:
        plan.setdefault(ktype, []).append(self.paths[node])
    return plan


def _keras_graph(model: FILNet) -> Tuple[KerasGraph, List[int]]:
  """FIL.py's layer graph over our module paths; returns (graph, outputs)."""
  del model  # the graph does not depend on the widths
  g = KerasGraph()

  def conv_bn(x, path, conv='conv', bn='bn'):
    x = g.add('Conv2D', x, path=path + (conv,))
    return g.add('BatchNormalization', x, path=path + (bn,))

  def cbl(x, path):
    return g.add('LeakyReLU', conv_bn(x, path))

  def encoder(side):
    e = f'encoder_{side}'
    x = g.add('InputLayer')
    x = cbl(cbl(x, (e, 'stem1')), (e, 'stem2'))
    feats = [x]
    for k in range(2, 6):
      b = (e, f'block{k}')
      m = cbl(x, b + ('cbl1',))
      m = cbl(g.add('MaxPooling2D', m), b + ('cbl2',))
      m = conv_bn(m, b, 'conv3', 'bn3')
      s = g.add('MaxPooling2D', cbl(x, b + ('skip',)))
      x = g.add('LeakyReLU', g.add('Add', m, s))
      feats.append(x)
    return feats

  feats_a, feats_b = encoder('a'), encoder('b')
  privates, shareds = [], []
  for k in range(1, 6):
    s = ('fil', f'stage{k}')
    a1 = cbl(feats_a[k - 1], s + ('value_a',))
    s1 = g.add('Lambda', conv_bn(feats_a[k - 1], s + ('gate_a',)))
    a2 = cbl(feats_b[k - 1], s + ('value_b',))
    s2 = g.add('Lambda', conv_bn(feats_b[k - 1], s + ('gate_b',)))
    a3, a4 = g.add('Lambda', a1, s2), g.add('Lambda', a2, s1)
    d3 = g.add('Lambda', g.add('Subtract', a3, a1))
    d4 = g.add('Lambda', g.add('Subtract', a4, a2))
    privates.append(g.add('Concatenate', d3, d4))
    shareds.append((a3, a4))
  metric, x = [], None
  for k in range(1, 6):
    x = privates[0] if k == 1 else g.add(
        'Concatenate', g.add('MaxPooling2D', x), privates[k - 1])
    s = ('metric', f'stage{k}')
    x = cbl(cbl(x, s + ('cbl1',)), s + ('cbl2',))
    metric.append(x)

  def dense_head(x, path):
    x = g.add('GlobalAveragePooling2D', x)
    for name in ('dense1', 'dense2', 'logit'):
      x = g.add('Dense', x, path=path + (name,))
    return x

  module = {}
  for k in _HEADS:
    h = (f'module_head{k}',)
    x = g.add('Add', *shareds[k - 1])
    x = cbl(cbl(x, h + ('cbl1',)), h + ('cbl2',))
    module[k] = dense_head(x, h + ('head',))
  stage = {k: dense_head(metric[k - 1], (f'stage_head{k}',)) for k in _HEADS}
  return g, [stage[5], stage[4], stage[3], module[5], module[4], module[3]]


def keras_layer_plan(model: FILNet) -> Dict[str, List[Tuple[str, ...]]]:
  """{keras type: [flax module path, ...]} in the official model.layers order."""
  g, outputs = _keras_graph(model)
  return g.plan(outputs)


def keras_layer_classes(model: FILNet) -> List[str]:
  """Keras class of every layer in model.layers order (checked against graph.tsv)."""
  g, outputs = _keras_graph(model)
  return [g.classes[n] for n in g.layer_order(outputs)]
