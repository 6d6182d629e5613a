"""MGLA: multi-dimensional global-to-local attention (paper Sec. 3.2, REFERENCE "MGLA")."""
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from rrl_jax.models.layers import glorot_uniform, zeros


def mgla_kernel_size(n: int, gamma: int = 2, b: int = 1) -> int:
  """ECA-style kernel size int(|(log2 n + b) / gamma|), bumped to odd."""
  k = int(abs((math.log(n, 2) + b) / gamma))
  return k if k % 2 else k + 1


class DimensionGate(nn.Module):
  """sigmoid(Conv1D(1 filter, k, 'same', bias)) over a length-n descriptor."""
  kernel: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, desc: jax.Array) -> jax.Array:  # (B, n) -> (B, n)
    y = nn.Conv(1, (self.kernel,), padding='SAME', kernel_init=glorot_uniform,
                bias_init=zeros, dtype=self.dtype, name='conv1d')(desc[..., None])
    return nn.sigmoid(y[..., 0])


class MGLA(nn.Module):
  """Gates x (B, H, W, C) along C, H and W with softmax-pooled global descriptors.

  For each dimension d, the mean of x over d, softmaxed, weights the other two
  dimensions; the weighted sum of x over them is a descriptor along d, and a
  Conv1D + sigmoid turns it into a gate.
  out = x * gate_c * gate_h * gate_w. Conv order (channel, height, width) is the
  official creation order.
  """
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, h, w, c = x.shape
    xf = x.astype(jnp.float32)
    if MGLA_CUSTOM_VJP:
      desc_c, desc_h, desc_w = descriptors(xf)
    else:
      desc_c, desc_h, desc_w = _descriptors(xf)[:3]
    gate_c = DimensionGate(mgla_kernel_size(c), name='channel')(desc_c)
    gate_h = DimensionGate(mgla_kernel_size(h), name='height')(desc_h)
    gate_w = DimensionGate(mgla_kernel_size(w), name='width')(desc_w)
    gate = gated if MGLA_CUSTOM_VJP else _gated
    out = gate(xf, gate_c, gate_h, gate_w)
    return out.astype(self.dtype or x.dtype)


# Hand-written backward passes for the two element-wise parts of MGLA (the
# descriptors and the gating). Measured with launch.bench_ab (11 rounds, CPU):
# 1.023x the step time and +22 % executable memory (the saved softmaxes), as
# XLA already fuses autodiff's passes; off.
MGLA_CUSTOM_VJP = False


def _descriptors(xf):
  """(desc_c, desc_h, desc_w, s_c, s_h, s_w) of x (B, H, W, C), float32."""
  b, h, w, c = xf.shape
  # Channel: softmax over the H*W positions of mean_C(x).
  s_c = jax.nn.softmax(jnp.mean(xf, -1).reshape(b, h * w), -1).reshape(b, h, w)
  # Descriptors are multiply + reduce (fused loops in place on NHWC) rather
  # than einsums: XLA:CPU turned those into batched dots behind transposing
  # copies of x, 2.6x slower in the forward pass on 64x64x16 maps.
  desc_c = jnp.sum(xf * s_c[..., None], (1, 2))
  # Height: softmax over the W*C entries of mean_H(x).
  s_h = jax.nn.softmax(jnp.mean(xf, 1).reshape(b, w * c), -1).reshape(b, w, c)
  desc_h = jnp.sum(xf * s_h[:, None], (2, 3))
  # Width: softmax over the H*C entries of mean_W(x).
  s_w = jax.nn.softmax(jnp.mean(xf, 2).reshape(b, h * c), -1).reshape(b, h, c)
  desc_w = jnp.sum(xf * s_w[:, :, None], (1, 3))
  return desc_c, desc_h, desc_w, s_c, s_h, s_w


@jax.custom_vjp
def descriptors(xf):
  return _descriptors(xf)[:3]


def _descriptors_fwd(xf):
  desc_c, desc_h, desc_w, s_c, s_h, s_w = _descriptors(xf)
  return (desc_c, desc_h, desc_w), (xf, desc_c, desc_h, desc_w, s_c, s_h, s_w)


def _descriptors_bwd(res, cot):
  xf, desc_c, desc_h, desc_w, s_c, s_h, s_w = res
  g_c, g_h, g_w = cot
  _, h, w, c = xf.shape
  # desc = sum(x * s) with s = softmax(mean(x)): d(desc)/dx is s, plus the
  # softmax-Jacobian term spread evenly over the averaged axis. The softmax
  # term's inner product sum(s * ds) equals sum(g * desc), no extra pass.
  ds_c = jnp.sum(xf * g_c[:, None, None, :], -1)
  dm_c = s_c * (ds_c - jnp.sum(g_c * desc_c, -1)[:, None, None])
  ds_h = jnp.sum(xf * g_h[:, :, None, None], 1)
  dm_h = s_h * (ds_h - jnp.sum(g_h * desc_h, -1)[:, None, None])
  ds_w = jnp.sum(xf * g_w[:, None, :, None], 2)
  dm_w = s_w * (ds_w - jnp.sum(g_w * desc_w, -1)[:, None, None])
  dx = (s_c[..., None] * g_c[:, None, None, :] + dm_c[..., None] / c
        + s_h[:, None] * g_h[:, :, None, None] + dm_h[:, None] / h
        + s_w[:, :, None] * g_w[:, None, :, None] + dm_w[:, :, None] / w)
  return (dx,)


descriptors.defvjp(_descriptors_fwd, _descriptors_bwd)


def _gates(gate_c, gate_h, gate_w):
  return (gate_c[:, None, None, :] * gate_h[:, :, None, None]
          * gate_w[:, None, :, None])


def _gated(xf, gate_c, gate_h, gate_w):
  return (xf * gate_c[:, None, None, :] * gate_h[:, :, None, None]
          * gate_w[:, None, :, None])


@jax.custom_vjp
def gated(xf, gate_c, gate_h, gate_w):
  return _gated(xf, gate_c, gate_h, gate_w)


def _gated_fwd(xf, gate_c, gate_h, gate_w):
  return _gated(xf, gate_c, gate_h, gate_w), (xf, gate_c, gate_h, gate_w)


def _gated_bwd(res, dout):
  xf, gate_c, gate_h, gate_w = res
  t = dout * xf
  d_c = jnp.sum(t * (gate_h[:, :, None, None] * gate_w[:, None, :, None]), (1, 2))
  d_h = jnp.sum(t * (gate_c[:, None, None, :] * gate_w[:, None, :, None]), (2, 3))
  d_w = jnp.sum(t * (gate_c[:, None, None, :] * gate_h[:, :, None, None]), (1, 3))
  return dout * _gates(gate_c, gate_h, gate_w), d_c, d_h, d_w


gated.defvjp(_gated_fwd, _gated_bwd)
