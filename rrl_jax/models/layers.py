"""Keras-faithful building blocks: BatchNorm, CBL, TF1 bilinear upsampling.

The details here decide parity with the official Keras 2.2 model (docs/faithfulness.md).
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# Keras 2.2 initialisers. he_normal is a *truncated* normal with fan-in scaling;
# flax's variance_scaling applies the same 0.8796 truncation correction.
he_normal = nn.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal')
glorot_uniform = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros

LEAKY_SLOPE = 0.1
# Collection where training-mode BatchNorm sows (mean, unbiased variance) of its
# batch when it is mutable.
BATCH_MOMENTS = 'batch_moments'


class BatchNorm(nn.Module):
  """Keras 2.2 BatchNormalization over the last axis.

  Normalises with the biased batch variance (training) or the moving statistics
  (inference); the moving variance is fed the batch variance times
  n / (n - 1 - epsilon), Keras 2.2's "unbiased" estimate (its
  normalization.py). Statistics are always float32 and are
  taken over the whole (global) batch, so data-parallel jit equals one device.
  """
  momentum: float = 0.99
  epsilon: float = 1e-3
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.is_folded():
      if train:
        raise ValueError(f'BatchNorm {"/".join(self.scope.path)} was folded into '
                         'its convolution (rrl_jax.evaluation.deploy): inference only.')
      return x.astype(self.dtype or x.dtype)
    features = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (features,), jnp.float32)
    bias = self.param('bias', zeros, (features,), jnp.float32)
    moving_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,),
                                jnp.float32)
    moving_var = self.variable('batch_stats', 'var', jnp.ones, (features,),
                               jnp.float32)
    if train:
      xf = x.astype(jnp.float32)
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(xf, axes)
      # Two passes, as Keras computes it: the one-pass E[x^2] - E[x]^2 was 3%
      # faster but moved the Keras training replay past the float32 floor.
      var = jnp.mean(jnp.square(xf - mean), axes)
      if not self.is_initializing():
        self._update_moving(moving_mean, moving_var, mean, var, xf.size // features)
    else:
      mean, var = moving_mean.value, moving_var.value
    inv = scale * jax.lax.rsqrt(var + self.epsilon)
    dtype = self.dtype or x.dtype
    y = x.astype(jnp.float32) * inv + (bias - mean * inv)
    return y.astype(dtype)

  def is_folded(self) -> bool:
    """Deploy form (rrl_jax/evaluation/deploy.py): no scale, bias or statistics in the variables.

    `rrl_jax.evaluation.deploy.fold_batch_norms` moves them into the preceding convolution
    and removes them; the layer is then the identity. A tree with only some of
    them is not folded, so the lookup below fails and names what is missing.
    """
    if self.is_initializing():
      return False
    return not any(self.has_variable(c, n) for c, n in (
        ('params', 'scale'), ('params', 'bias'), ('batch_stats', 'mean'),
        ('batch_stats', 'var')))

  def _update_moving(self, moving_mean, moving_var, mean, var, n):
    # Keras 2.2 multiplies by n / (n - (1 + epsilon)), not Bessel's n / (n - 1)
    # (a single value, n = 1, is fed as it is rather than times -1000).
    unbiased = var * (n / (n - 1.0 - self.epsilon)) if n > 1 else var
    # The batch moments the moving averages are fed with, for precise-BN
    # population statistics (rrl_jax/training/bn_recalibration.py); a no-op unless the
    # BATCH_MOMENTS collection is mutable.
    self.sow(BATCH_MOMENTS, 'mean', mean)
    self.sow(BATCH_MOMENTS, 'var', unbiased)
    decay = 1.0 - self.momentum
    moving_mean.value = moving_mean.value - (moving_mean.value - mean) * decay
    moving_var.value = moving_var.value - (moving_var.value - unbiased) * decay


def conv3x3(features: int, dtype=None, name=None) -> nn.Conv:
  return nn.Conv(features, (3, 3), padding='SAME', kernel_init=he_normal,
                 bias_init=zeros, dtype=dtype, name=name)


def conv1x1(features: int, dtype=None, name=None) -> nn.Conv:
  return nn.Conv(features, (1, 1), padding='SAME', kernel_init=he_normal,
                 bias_init=zeros, dtype=dtype, name=name)


def dense(features: int, dtype=None, name=None) -> nn.Dense:
  """Keras Dense defaults: glorot-uniform kernel, zero bias."""
  return nn.Dense(features, kernel_init=glorot_uniform, bias_init=zeros, dtype=dtype,
                  name=name)


class CBL(nn.Module):
  """Conv (k x k, 'same', bias) -> BatchNorm -> LeakyReLU(0.1) (the paper's notation)."""
  features: int
  kernel: int = 3
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.Conv(self.features, (self.kernel, self.kernel), padding='SAME',
                kernel_init=he_normal, bias_init=zeros, dtype=self.dtype,
                name='conv')(x)
    x = BatchNorm(dtype=self.dtype, name='bn')(x, train)
    return nn.leaky_relu(x, LEAKY_SLOPE)


class ConvBNReLU(nn.Module):
  """Conv3x3 ('same', bias; stride 2 pads 0 before / 1 after like TF) -> BN -> ReLU."""
  features: int
  stride: int = 1
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    # padding='SAME' is lax's rule: total = max((ceil(H/s)-1)*s + k - H, 0),
    # before = total // 2 -- TF's, not a symmetric pad of 1.
    x = nn.Conv(self.features, (3, 3), strides=(self.stride, self.stride),
                padding='SAME', kernel_init=he_normal, bias_init=zeros,
                dtype=self.dtype, name='conv')(x)
    x = BatchNorm(dtype=self.dtype, name='bn')(x, train)
    return nn.relu(x)


@jax.custom_vjp
def max_pool2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2, NHWC (H and W even), as Keras MaxPooling2D.

  Written as a reshape + max with a custom gradient because XLA:CPU lowers the
  gradient of lax.reduce_window(max) to a variadic reduce-window over four
  materialised int32 iotas: 4.6x slower for a 64x64x32 batch, and with
  nn.max_pool the pooling gradients took ~11% of a training step. The gradient
  goes to the first maximum of each window in row-major order, exactly as the
  reduce_window gradient (select_and_scatter with >=) and TF's MaxPoolGrad do,
  ties included.
  """
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool2_fwd(x):
  y = max_pool2(x)
  return y, (x, y)


def _max_pool2_bwd(res, g):
  x, y = res
  b, h, w, c = x.shape
  windows = x.reshape(b, h // 2, 2, w // 2, 2, c)
  is_max = windows == y[:, :, None, :, None, :]
  order = jnp.arange(4, dtype=jnp.int32).reshape(1, 1, 2, 1, 2, 1)
  first = jnp.min(jnp.where(is_max, order, 4), axis=(2, 4), keepdims=True)
  dx = jnp.where(order == first, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
  return (dx.reshape(x.shape),)


max_pool2.defvjp(_max_pool2_fwd, _max_pool2_bwd)


def _upsample_axis_x2(x: jax.Array, axis: int) -> jax.Array:
  """out[2j] = in[j], out[2j+1] = in[j] + (in[j+1] - in[j]) / 2, last repeated."""
  n = x.shape[axis]
  nxt = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis),
                         jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)
  mid = x + (nxt - x) * 0.5
  out = jnp.stack([x, mid], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return out.reshape(shape)


def upsample_bilinear_x2(x: jax.Array) -> jax.Array:
  """Bilinear x2 upsampling of NHWC maps with Keras 2.2 / TF 1.14 semantics.

  align_corners=False *without* half-pixel centres (docs/faithfulness.md). This is not what
  jax.image.resize computes (it uses half-pixel centres).
  """
  return _upsample_axis_x2(_upsample_axis_x2(x, 2), 1)
