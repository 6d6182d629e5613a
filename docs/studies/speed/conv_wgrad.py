"""Weight gradient of a 3x3 'same' convolution: XLA's autodiff against two rewrites.

The train-step profile puts ~20 % of the step in layout copies around the
convolutions' weight gradients (README "Benchmarks"). This times, per layer
shape of RRL-Net at batch 64 (float32, XLA:CPU Eigen convolutions as every
entry point), the weight gradient as autodiff gives it against
  shift:   nine shifted views of the padded input, each contracted with the
           output gradient by one matmul (no convolution, no transposes);
  patches: conv_general_dilated_patches (im2col) and one matmul.
The three agree to 1e-5 (checked before timing); calls alternate, median of 7.

  python docs/studies/speed/conv_wgrad.py
"""
import time

from rrl_jax import xla_cpu

xla_cpu.apply_xla_flags()

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

DIMS = ('NHWC', 'HWIO', 'NHWC')
# (batch, height, width, in channels, out channels): sizes of RRL-Net's 3x3 convolutions.
SHAPES = ((64, 64, 64, 3, 16), (64, 64, 64, 16, 16), (64, 32, 32, 32, 32),
          (64, 32, 32, 64, 64), (64, 16, 16, 64, 64), (64, 8, 8, 128, 128),
          (64, 4, 4, 256, 256))


def conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=DIMS)


def autodiff(x, w, g):
  return jax.vjp(lambda k: conv(x, k), w)[1](g)[0]


def shift(x, w, g):
  kh, kw = w.shape[:2]
  h, wd = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  return jnp.stack([jnp.stack([
      jnp.einsum('nhwc,nhwo->co', xp[:, i:i + h, j:j + wd, :], g)
      for j in range(kw)]) for i in range(kh)])


def patches(x, w, g):
  kh, kw, cin, cout = w.shape
  p = jax.lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), 'SAME',
                                           dimension_numbers=DIMS)
  d = jnp.einsum('nhwk,nhwo->ko', p, g)  # k runs over (cin, kh, kw)
  return d.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)


def main():
  rng = np.random.default_rng(0)
  fns = {'autodiff': jax.jit(autodiff), 'shift': jax.jit(shift),
         'patches': jax.jit(patches)}
  print('shape (n, h, w, cin, cout): median ms per call; ratio to autodiff')
  for n, h, wd, cin, cout in SHAPES:
    x = jnp.asarray(rng.normal(size=(n, h, wd, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(n, h, wd, cout)), jnp.float32)
    ref = fns['autodiff'](x, w, g)
    for name, f in fns.items():
      err = float(jnp.max(jnp.abs(f(x, w, g) - ref)) / jnp.max(jnp.abs(ref)))
      if err > 1e-5:
        raise AssertionError(f'{name} differs from autodiff by {err:.1e}')
    times = {k: [] for k in fns}
    for _ in range(7):
      for name, f in fns.items():
        start = time.perf_counter()
        f(x, w, g).block_until_ready()
        times[name].append(time.perf_counter() - start)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f'{(n, h, wd, cin, cout)}: ' + ', '.join(f'{k} {v:.1f}' for k, v in ms.items())
          + f'; shift {ms["shift"] / ms["autodiff"]:.2f}x, '
          f'patches {ms["patches"] / ms["autodiff"]:.2f}x', flush=True)


if __name__ == '__main__':
  main()
