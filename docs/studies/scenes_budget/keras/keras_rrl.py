"""RRL-Net in tf.keras (TF 2.15), written from REFERENCE.md for the Keras seed study.

Not part of rrl_jax: it exists to train the reference framework with other seeds
(README of this folder). Layers are created in the official creation order and
named as tf.keras auto-names them there (branch B's outer names end in `_2`), so
`write_h5` produces files laid out like ../shared/fixtures/keras_rrl/*.h5 and
`launch.convert` reads them. check_fixtures.py verifies the build against the
official outputs and training replay.
"""
import collections
import math
import os

import h5py
import numpy as np
import tensorflow as tf

L = tf.keras.layers


class Names:
  """tf.keras auto-names per layer type ('conv2d', 'conv2d_1', ...)."""

  def __init__(self):
    self.count = collections.Counter()

  def __call__(self, kind, suffix=''):
    i = self.count[kind]
    self.count[kind] += 1
    base = kind if i == 0 else f'{kind}_{i}'
    return base + suffix, base


def upsample_tf1(x):
  """Bilinear x2 without half-pixel centres (Keras 2.2 on TF 1.x; REFERENCE)."""
  h, w = x.shape[1], x.shape[2]
  return tf.compat.v1.image.resize_bilinear(x, (2 * h, 2 * w), align_corners=False,
                                            half_pixel_centers=False)


def eca_kernel(n):
  k = int(abs((math.log(n, 2) + 1) / 2))
  return k if k % 2 else k + 1


def _desc_c(x):  # softmax over H*W of mean_C, weighted sum over H, W -> (B, C, 1)
  b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
  s = tf.reshape(tf.nn.softmax(tf.reshape(tf.reduce_mean(x, -1), (b, h * w))), (b, h, w, 1))
  return tf.reduce_sum(x * s, (1, 2))[..., None]


def _desc_h(x):  # softmax over W*C of mean_H -> (B, H, 1)
  b, w, c = tf.shape(x)[0], x.shape[2], x.shape[3]
  s = tf.reshape(tf.nn.softmax(tf.reshape(tf.reduce_mean(x, 1), (b, w * c))), (b, 1, w, c))
  return tf.reduce_sum(x * s, (2, 3))[..., None]


def _desc_w(x):  # softmax over H*C of mean_W -> (B, W, 1)
  b, h, c = tf.shape(x)[0], x.shape[1], x.shape[3]
  s = tf.reshape(tf.nn.softmax(tf.reshape(tf.reduce_mean(x, 2), (b, h * c))), (b, h, 1, c))
  return tf.reduce_sum(x * s, (1, 3))[..., None]


def _gate(t):
  x, gc, gh, gw = t
  return x * gc[:, :, 0][:, None, None, :] * gh[:, :, :, None] * gw[:, None, :, :]


class Builder:
  """Creates the layers in official order; `layers[name]` keeps every weighted one."""

  def __init__(self):
    self.names = Names()
    self.layers = {}  # outer name -> layer
    self.base = {}  # outer name -> the name its weights carry (no branch suffix)
    self.suffix = ''

  def _keep(self, layer, base):
    self.layers[layer.name] = layer
    self.base[layer.name] = base
    return layer

  def conv(self, x, c, k=3, activation=None):
    name, base = self.names('conv2d', self.suffix)
    return self._keep(L.Conv2D(c, k, padding='same', kernel_initializer='he_normal',
                               activation=activation, name=name), base)(x)

  def bn(self, x):
    name, base = self.names('batch_normalization', self.suffix)
    return self._keep(L.BatchNormalization(name=name), base)(x)

  def cbl(self, x, c, k=3):
    return L.LeakyReLU(0.1)(self.bn(self.conv(x, c, k)))

  def mgla(self, x):
    _, h, w, c = x.shape
    gates = []
    for desc, n in ((_desc_c, c), (_desc_h, h), (_desc_w, w)):
      name, base = self.names('conv1d', self.suffix)
      conv = self._keep(L.Conv1D(1, eca_kernel(n), padding='same', activation='sigmoid',
                                 name=name), base)
      gates.append(conv(L.Lambda(desc)(x)))
    return L.Lambda(_gate)([x] + gates)

  def dense(self, x, n, activation):
    name, base = self.names('dense')
    return self._keep(L.Dense(n, activation=activation, name=name), base)(x)

  def head(self, x):
    x = L.GlobalAveragePooling2D()(x)
    x = self.dense(x, 512, 'relu')
    x = self.dense(x, 256, 'relu')
    return self.dense(x, 1, 'sigmoid')

  def branch(self, x):
    """Encoder f1..f5 and the reconstruction (paper Sec. 3.2, ALFE)."""
    feats = []
    for i, c in enumerate((16, 32, 64, 128, 256)):
      x = self.cbl(x, c)
      if i:
        x = L.MaxPool2D(2)(x)
      x = self.mgla(x)
      feats.append(x)
    for c in (128, 64, 32, 16):
      x = self.mgla(L.Lambda(upsample_tf1)(self.cbl(x, c)))
    return feats, self.conv(x, 1, activation='sigmoid')


def build(weights=None, seed=None):
  """(training model with the 8 outputs in Keras order, Builder with its layers)."""
  tf.keras.backend.clear_session()
  if seed is not None:
    tf.random.set_seed(seed)  # the initial weights
  b = Builder()
  in_a = L.Input((64, 64, 1))
  in_b = L.Input((64, 64, 1))
  feats_a, recon_a = b.branch(in_a)
  b.suffix = '_2'
  feats_b, recon_b = b.branch(in_b)
  b.suffix = ''
  privates, shareds = [], []
  for fa, fb, c in zip(feats_a, feats_b, (16, 32, 64, 128, 256)):  # FIL (Sec. 3.3)
    val_a = b.cbl(fa, c, 1)
    gate_a = L.Activation('sigmoid')(b.bn(b.conv(fa, c, 1)))
    val_b = b.cbl(fb, c, 1)
    gate_b = L.Activation('sigmoid')(b.bn(b.conv(fb, c, 1)))
    x_a = L.Multiply()([val_a, gate_b])
    x_b = L.Multiply()([val_b, gate_a])
    diff = L.Lambda(lambda t: tf.concat([tf.abs(t[0] - t[1]), tf.abs(t[2] - t[3])], -1))(
        [x_a, val_a, x_b, val_b])
    privates.append(diff)
    shareds.append(L.Add()([x_a, x_b]))
  metric, x = [], None
  for d, c in zip(privates, (32, 64, 128, 256, 512)):  # metric network
    x = d if x is None else L.Concatenate()([L.MaxPool2D(2)(x), d])
    x = b.cbl(b.cbl(x, c), c)
    metric.append(x)
  module = {}
  for i, c in ((3, 64), (4, 128), (5, 256)):
    module[i] = b.head(b.cbl(b.cbl(shareds[i - 1], c), c))
  stage = {i: b.head(metric[i - 1]) for i in (3, 4, 5)}
  model = tf.keras.Model([in_a, in_b], [stage[5], stage[4], stage[3], module[5], module[4],
                                        module[3], recon_a, recon_b])
  if weights:
    read_h5(b, weights)
  return model, b


def strings(values):
  """HDF5 name attributes (bytes or str, by writer) as str."""
  return [v.decode() if isinstance(v, bytes) else v for v in values]


def weight_key(variable):
  """'kernel', 'bias', 'gamma', ... of a layer's variable ('conv2d/kernel:0')."""
  return variable.name.split('/')[-1].split(':')[0]


def read_h5(builder, path):
  """Sets every weighted layer from a save_weights-style HDF5 file, by layer name."""
  with h5py.File(path, 'r') as f:
    missing = set(builder.layers)
    for name in strings(f.attrs['layer_names']):
      names = strings(f[name].attrs['weight_names'])
      if not names:
        continue
      builder.layers[name].set_weights([np.asarray(f[name][n]) for n in names])
      missing.discard(name)
    if missing:
      raise ValueError(f'{path}: no weights for {sorted(missing)[:5]}...')


def write_h5(builder, path, order_from):
  """Writes the layers as tf.keras save_weights does, in the layer order of `order_from`."""
  with h5py.File(order_from, 'r') as ref:
    order = strings(ref.attrs['layer_names'])
    attrs = {k: ref.attrs[k] for k in ('backend', 'keras_version')}
  with h5py.File(path + '.tmp', 'w') as f:
    f.attrs['layer_names'] = np.array([n.encode() for n in order])
    for k, v in attrs.items():
      f.attrs[k] = v
    f.attrs['written_by'] = f'keras_rrl.py (tensorflow {tf.__version__})'
    for name in order:
      g = f.create_group(name)
      layer = builder.layers.get(name)
      weights = layer.weights if layer is not None else []
      inner = builder.base.get(name, name)
      wnames = [f'{inner}/{weight_key(w)}:0' for w in weights]
      g.attrs['weight_names'] = np.array([n.encode() for n in wnames])
      for n, w in zip(wnames, weights):
        g.create_dataset(n, data=w.numpy())
  os.replace(path + '.tmp', path)
