"""On-device augmentation of patch pairs, after the official imgaug pipeline.

As the official utils.gen4 (docs/training.md): on each image of each pair
independently `SomeOf((0, 2), [GaussianBlur(0), GammaContrast((.5, 1.5)),
ScaleX((.95, 1.05)), ScaleY, TranslateX(percent=(-.05, .05)), TranslateY,
AdditiveGaussianNoise(.02 * 255)], random_order=True)` with symmetric borders,
then on the pair jointly `SomeOf((0, 2), [Fliplr(.5), Flipud(.5), rotate 90,
180, 270], random_order=True)`.

imgaug's SomeOf draws, per image, a count n uniform in {lo..hi} and n distinct
children (a shuffled row of n Trues); with random_order=True it draws ONE
permutation of the children per call (per batch) and applies the active
children in that order. `cfg.order` = 'batch' (that, faithful), 'example' (a
permutation per example) or 'listed' (list order).

Pure JAX, vmapped over the batch, jit-able. Every random draw derives from the
run key, the step and the example's global index (`example_keys`) or, for the
per-batch order, from the run key and the step alone, so results do not depend
on how many devices or hosts share the batch. Images are float [0, 1]; every
applied op clips to [0, 1] as imgaug's uint8 arithmetic does.
"""
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

IMAGE_OPS = ('blur', 'gamma', 'scale_x', 'scale_y', 'translate_x',
             'translate_y', 'noise')
PAIR_OPS = ('flip_lr', 'flip_ud', 'rot90', 'rot180', 'rot270')
ORDERS = ('batch', 'example', 'listed')
_EXAMPLE_TAG, _ORDER_TAG = 0, 1
_SEQ_A, _SEQ_B, _SEQ_PAIR = 0, 1, 2


def default_augment_config() -> ml_collections.ConfigDict:
  """The official pipeline's operations and ranges (README "Augmentation")."""
  return ml_collections.ConfigDict(dict(
      enabled=True,
      order='batch',  # 'batch' (imgaug random_order) | 'example' | 'listed'
      image_ops=(0, 2),  # per image: how many of IMAGE_OPS (inclusive range)
      pair_ops=(0, 2),  # per pair: how many of PAIR_OPS
      blur_sigma=(0.0, 0.0),  # official GaussianBlur(0, 1): sigma 0, a no-op
      gamma=(0.5, 1.5),
      scale=(0.95, 1.05),  # about the image centre, per axis
      translate=0.05,  # +- fraction of the size, per axis
      noise_sd=0.02,  # on [0, 1] images (official: 0.02 * 255 on uint8)
      flip_lr_p=0.5,
      flip_ud_p=0.5,
      quantize=False,  # round to 1/255 after each op, like imgaug on uint8
  ))


def example_keys(rng: jax.Array, step, num_examples: int,
                 index_offset=0) -> jax.Array:
  """One key per example: fold_in(fold_in(fold_in(rng, step), 0), global index).

  `index_offset` is the global index of the first example given here (0 when
  the whole global batch is augmented in one jitted function).
  """
  base = jax.random.fold_in(jax.random.fold_in(rng, step), _EXAMPLE_TAG)
  index = (jnp.arange(num_examples, dtype=jnp.uint32)
           + jnp.asarray(index_offset).astype(jnp.uint32))
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(index)


def _order_key(rng: jax.Array, step, seq: int) -> jax.Array:
  base = jax.random.fold_in(jax.random.fold_in(rng, step), _ORDER_TAG)
  return jax.random.fold_in(base, seq)


def _some_of(key: jax.Array, order: jax.Array, n_ops: int,
             count: Tuple[int, int]) -> Tuple[jax.Array, jax.Array]:
  """imgaug SomeOf selection: (op ids per slot, slot valid), at most count[1] slots.

  Draws n uniform in {count[0]..count[1]} and n distinct ops; returns the
  selected ops in the sequence given by the permutation `order`.
  """
  lo, hi = int(count[0]), min(int(count[1]), n_ops)
  k_n, k_pick = jax.random.split(key)
  n = jax.random.randint(k_n, (), lo, hi + 1)
  rank = jnp.argsort(jax.random.uniform(k_pick, (n_ops,)))
  active = rank < n  # a shuffled row with n Trues, as imgaug
  in_order = active[order]
  slot_ops = order[jnp.argsort(~in_order, stable=True)][:hi]
  return slot_ops, jnp.arange(hi) < n


def _order(cfg, key: jax.Array, n_ops: int) -> jax.Array:
  if cfg.order == 'listed':
    return jnp.arange(n_ops)
  if cfg.order in ('batch', 'example'):
    return jax.random.permutation(key, n_ops)
  raise ValueError(f"augment.order must be 'batch', 'example' or 'listed', "
                   f'got {cfg.order!r}.')


def plan_image(key: jax.Array, order: jax.Array, cfg,
               size: int = 64) -> Dict[str, jax.Array]:
  """Random draws for one image: ops per slot and each slot's parameters."""
  k_sel, k_par = jax.random.split(key)
  ops, valid = _some_of(k_sel, order, len(IMAGE_OPS), cfg.image_ops)
  slots = ops.shape[0]
  ks = jax.random.split(k_par, 5)
  u = lambda k, lohi: jax.random.uniform(k, (slots,), minval=lohi[0], maxval=lohi[1])
  return dict(
      ops=ops, valid=valid,
      sigma=u(ks[0], cfg.blur_sigma),
      gamma=u(ks[1], cfg.gamma),
      scale=u(ks[2], cfg.scale),
      shift=u(ks[3], (-cfg.translate, cfg.translate)) * size,
      noise_key=jax.random.split(ks[4], slots))


def plan_pair(key: jax.Array, order: jax.Array, cfg) -> Dict[str, jax.Array]:
  """Random draws for one pair: ops per slot and flip coins."""
  k_sel, k_lr, k_ud = jax.random.split(key, 3)
  ops, valid = _some_of(k_sel, order, len(PAIR_OPS), cfg.pair_ops)
  slots = ops.shape[0]
  return dict(ops=ops, valid=valid,
              flip_lr=jax.random.bernoulli(k_lr, cfg.flip_lr_p, (slots,)),
              flip_ud=jax.random.bernoulli(k_ud, cfg.flip_ud_p, (slots,)))


def _blur(x: jax.Array, sigma: jax.Array, radius: int) -> jax.Array:
  """Separable Gaussian blur, border reflect-101 (cv2's default in imgaug)."""
  k = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  w = jnp.exp(-0.5 * jnp.square(k / jnp.maximum(sigma, 1e-3)))
  w = w / jnp.sum(w)
  p = jnp.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode='reflect')
  h, wd = x.shape[:2]
  rows = sum(w[i] * p[i:i + h] for i in range(2 * radius + 1))
  return sum(w[i] * rows[:, i:i + wd] for i in range(2 * radius + 1))


def _warp(x: jax.Array, sx, sy, tx, ty) -> jax.Array:
  """Axis-aligned affine (scale about the centre, then shift), bilinear, symmetric border.

  imgaug's matrix maps src -> c + s * (src - c) + t with c = size / 2 - 0.5;
  the output samples src = c + (dst - t - c) / s; 'reflect' is imgaug's
  'symmetric' (cv2 BORDER_REFLECT: edge pixel repeated).
  """
  h, w = x.shape[:2]
  cy, cx = h / 2.0 - 0.5, w / 2.0 - 0.5
  r, c = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                      jnp.arange(w, dtype=jnp.float32), indexing='ij')
  src_r = cy + (r - ty - cy) / sy
  src_c = cx + (c - tx - cx) / sx
  warp_channel = lambda ch: jax.scipy.ndimage.map_coordinates(
      ch, [src_r, src_c], order=1, mode='reflect')
  return jax.vmap(warp_channel, in_axes=-1, out_axes=-1)(x)


def _finish(y: jax.Array, x: jax.Array, applied, cfg) -> jax.Array:
  y = jnp.clip(y, 0.0, 1.0)
  if cfg.quantize:
    y = jnp.round(y * 255.0) / 255.0
  return jnp.where(applied, y, x)


def apply_image_plan(x: jax.Array, plan: Dict[str, jax.Array], cfg) -> jax.Array:
  """Applies one image's planned ops, slot by slot, to x (H, W, C)."""
  radius = int(np.ceil(3.0 * float(max(cfg.blur_sigma))))
  for s in range(plan['ops'].shape[0]):
    op, valid = plan['ops'][s], plan['valid'][s]
    y = x
    if radius > 0:  # sigma range (0, 0) = the official no-op: nothing to compute
      blurred = _blur(x, plan['sigma'][s], radius)
      y = jnp.where((op == 0) & (plan['sigma'][s] >= 1e-3), blurred, y)
    y = jnp.where(op == 1, jnp.power(x, plan['gamma'][s]), y)
    one, zero = jnp.float32(1), jnp.float32(0)
    warped = _warp(x,
                   jnp.where(op == 2, plan['scale'][s], one),
                   jnp.where(op == 3, plan['scale'][s], one),
                   jnp.where(op == 4, plan['shift'][s], zero),
                   jnp.where(op == 5, plan['shift'][s], zero))
    y = jnp.where((op >= 2) & (op <= 5), warped, y)
    noise = cfg.noise_sd * jax.random.normal(plan['noise_key'][s], x.shape)
    y = jnp.where(op == 6, x + noise, y)
    x = _finish(y, x, valid, cfg)
  return x


def apply_pair_plan(xa: jax.Array, xb: jax.Array, plan: Dict[str, jax.Array],
                    cfg) -> Tuple[jax.Array, jax.Array]:
  """Applies one pair's planned flips/rotations identically to both images.

  imgaug's Affine(rotate=90) turns the image clockwise as displayed
  (np.rot90 with k=-1); rotate=270 counter-clockwise.
  """
  def one(x, s):
    op = plan['ops'][s]
    candidates = jnp.stack([
        jnp.where(plan['flip_lr'][s], x[:, ::-1], x),
        jnp.where(plan['flip_ud'][s], x[::-1], x),
        jnp.rot90(x, k=-1, axes=(0, 1)),
        jnp.rot90(x, k=2, axes=(0, 1)),
        jnp.rot90(x, k=1, axes=(0, 1))])
    return jnp.where(plan['valid'][s], candidates[op], x)
  for s in range(plan['ops'].shape[0]):
    xa, xb = one(xa, s), one(xb, s)
  return xa, xb


def plan_batch(rng: jax.Array, step, batch: int, cfg, size: int = 64,
               index_offset=0) -> Dict[str, Dict[str, jax.Array]]:
  """All random draws for a batch: {'a': ..., 'b': ..., 'pair': ...} plans."""
  keys = example_keys(rng, step, batch, index_offset)
  split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)

  def order(seq, n_ops, example_keys_):
    if cfg.order == 'example':
      return jax.vmap(lambda k: _order(cfg, jax.random.fold_in(k, 7), n_ops))(
          example_keys_)
    o = _order(cfg, _order_key(rng, step, seq), n_ops)
    return jnp.broadcast_to(o, (batch, n_ops))

  n_img, n_pair = len(IMAGE_OPS), len(PAIR_OPS)
  img = jax.vmap(lambda k, o: plan_image(k, o, cfg, size))
  pair = jax.vmap(lambda k, o: plan_pair(k, o, cfg))
  return dict(a=img(split[:, 0], order(_SEQ_A, n_img, split[:, 0])),
              b=img(split[:, 1], order(_SEQ_B, n_img, split[:, 1])),
              pair=pair(split[:, 2], order(_SEQ_PAIR, n_pair, split[:, 2])))


def augment_pairs(rng: jax.Array, step, xa: jax.Array, xb: jax.Array,
                  cfg, index_offset=0) -> Tuple[jax.Array, jax.Array]:
  """Augments float [0, 1] NHWC batches xa, xb (B, H, W, C); jit-able.

  Per image independently SomeOf(cfg.image_ops) of IMAGE_OPS, then per pair
  jointly SomeOf(cfg.pair_ops) of PAIR_OPS. Returns (xa, xb) in their dtype.
  `index_offset`: global index of xa[0] when given a slice of the global batch.
  """
  if not cfg.enabled:
    return xa, xb
  for name, x in (('xa', xa), ('xb', xb)):
    if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f'augment_pairs {name}: expected a float [0, 1] NHWC '
                       f'batch, got shape {x.shape} dtype {x.dtype}.')
  dtype = xa.dtype
  plans = plan_batch(rng, step, xa.shape[0], cfg, xa.shape[1], index_offset)
  fa = jax.vmap(lambda x, p: apply_image_plan(x, p, cfg))(
      xa.astype(jnp.float32), plans['a'])
  fb = jax.vmap(lambda x, p: apply_image_plan(x, p, cfg))(
      xb.astype(jnp.float32), plans['b'])
  fa, fb = jax.vmap(lambda a, b, p: apply_pair_plan(a, b, p, cfg))(
      fa, fb, plans['pair'])
  return fa.astype(dtype), fb.astype(dtype)
