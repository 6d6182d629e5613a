"""Builder 5: procedural cross-spectral patch pairs, the embedded default.

Each pair comes from a random "scene" on an 80x80 canvas: a warped Voronoi map of
3-7 regions, each with its own brightness and oriented texture, plus smooth
shading. The visible patch renders it directly. The other spectrum maps every
region through its own non-linear curve (gamma, offset, and for some regions a
contrast reversal), drops or replaces region textures, blurs and adds noise.
Matching pairs: same scene, other patch misregistered by a few pixels.
Non-matching pairs: another scene, or (hard negatives) the same scene with its
region seeds displaced, so textures and intensities look alike but geometry differs.
`difficulty` in [0, 1] scales misregistration, blur, noise, contrast reversal and
the share and closeness of hard negatives. Everything is seeded.
"""
import numpy as np
from scipy import ndimage

from rrl_jax.data import base

CANVAS = 72  # 64 + 2 * the largest misregistration (4 px at difficulty 1)
MARGIN = (CANVAS - base.PATCH) // 2
MAX_REGIONS = 7
_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)


def _warped_grid(rng, m):
  """(m, C*C, 3) rows [x, y, 1]: pixel coordinates bent by low-frequency sinusoids.

  The x shift depends on y only and the y shift on x only, so the warp is cheap.
  """
  line = np.arange(CANVAS, dtype=np.float32)
  freq, phase, amp = (rng.uniform(lo, hi, (m, 2)).astype(np.float32)
                      for lo, hi in ((0.02, 0.08), (0, 2 * np.pi), (0, 8)))
  bend = amp[..., None] * np.sin(freq[..., None] * line + phase[..., None])  # (m, 2, C)
  grid = np.ones((m, CANVAS, CANVAS, 3), np.float32)
  grid[..., 0] = _XX + bend[:, 0, :, None]
  grid[..., 1] = _YY + bend[:, 1, None, :]
  return grid.reshape(m, CANVAS * CANVAS, 3)


def _regions(grid, seeds, n_regions):
  """(m, C, C) index of the nearest of the first n_regions seeds (Voronoi).

  argmin_k |p - s_k|^2 = argmin_k (-2 p.s_k + |s_k|^2): one small matmul per sample.
  """
  weights = np.concatenate([-2 * seeds, (seeds ** 2).sum(-1, keepdims=True)], -1)
  unused = np.arange(MAX_REGIONS)[None, :] >= n_regions[:, None]
  weights[unused, 2] = np.inf
  score = np.matmul(grid, weights.transpose(0, 2, 1).astype(np.float32))
  return score.argmin(-1).reshape(-1, CANVAS, CANVAS)


def _flat(regions):
  """Region map -> indices into a raveled (m, K) per-region table."""
  rows = (np.arange(len(regions), dtype=np.int32) * MAX_REGIONS)[:, None, None]
  return regions.astype(np.int32) + rows


def _pick(per_region, flat_regions):
  """Gathers (m, K) per-region values at a flat region map (see _flat)."""
  return np.take(np.asarray(per_region, np.float32).ravel(), flat_regions)


def _texture_params(rng, m):
  angle = rng.uniform(0, np.pi, (m, MAX_REGIONS))
  return {'cos': np.cos(angle) * (f := rng.uniform(0.2, 1.2, (m, MAX_REGIONS))),
          'sin': np.sin(angle) * f,
          'phase': rng.uniform(0, 2 * np.pi, (m, MAX_REGIONS)),
          'hardness': rng.uniform(1.0, 4.0, (m, MAX_REGIONS))}


def _texture(params, regions):
  """Oriented sinusoid of each pixel's region, squashed towards stripes by 'hardness'."""
  p = {k: _pick(v, regions) for k, v in params.items()}
  wave = np.sin(p['cos'] * _XX + p['sin'] * _YY + p['phase'])
  return np.clip(wave * p['hardness'], -1, 1)


def _shading(rng, m, strength):
  gx, gy = (rng.uniform(-strength, strength, (2, m, 1, 1)) / CANVAS).astype(np.float32)
  return gx * (_XX - CANVAS / 2) + gy * (_YY - CANVAS / 2)


def _blur(images, sigmas):
  out = images.copy()
  for s in np.unique(sigmas):
    if s > 0:
      sel = sigmas == s
      out[sel] = ndimage.gaussian_filter(images[sel], sigma=(0, s, s), mode='reflect')
  return out


def generate(n: int, seed: int, difficulty: float = 0.5, stream: int = 0):
  """(patches uint8 (n, 2, 64, 64), labels int32 (n,)), half matching, shuffled.

  Memory grows as n * 72 * 72 * 7 * 4 bytes (Voronoi scores): call it in chunks.
  """
  if not 0.0 <= difficulty <= 1.0:
    raise ValueError(f'difficulty must be in [0, 1], found {difficulty}')
  rng = np.random.default_rng([seed, stream, 0x5EED])
  d = float(difficulty)
  m = n
  labels = (np.arange(n) % 2 == 0).astype(np.int32)
  rng.shuffle(labels)
  n_regions = rng.integers(3, MAX_REGIONS + 1, m)
  seeds = rng.uniform(-8, CANVAS + 8, (m, MAX_REGIONS, 2)).astype(np.float32)
  grid = _warped_grid(rng, m)
  regions = _regions(grid, seeds, n_regions)
  texture = _texture_params(rng, m)
  bright_a = rng.uniform(0.1, 0.9, (m, MAX_REGIONS))
  tex_a = rng.uniform(0.0, 0.25, (m, MAX_REGIONS))
  # Other spectrum: per-region curve o = offset + sign * a**gamma * gain.
  reverse = rng.random((m, MAX_REGIONS)) < 0.2 + 0.5 * d
  gamma = np.exp(rng.uniform(-0.8, 0.8, (m, MAX_REGIONS)))
  gain = rng.uniform(0.5, 1.0, (m, MAX_REGIONS))
  offset = rng.uniform(0.0, 0.3, (m, MAX_REGIONS))
  tex_b = np.where(rng.random((m, MAX_REGIONS)) < 0.3 + 0.4 * d, 0.0, tex_a) + \
      rng.uniform(0.0, 0.1 + 0.1 * d, (m, MAX_REGIONS))
  # Hard negatives: same scene, region seeds displaced; else another scene.
  negative = labels == 0
  hard = negative & (rng.random(m) < 0.6 * d)
  easy = negative & ~hard
  source = np.arange(m)
  easy_idx = np.flatnonzero(easy)
  source[easy_idx] = np.roll(easy_idx, 1) if len(easy_idx) > 1 else easy_idx
  angle = rng.uniform(0, 2 * np.pi, (m, MAX_REGIONS))
  radius = rng.uniform(14 - 8 * d, 22 - 8 * d, (m, MAX_REGIONS))
  moved = seeds + np.stack([np.cos(angle), np.sin(angle)], -1).astype(np.float32) * radius[..., None]
  regions_b = regions[source].copy()
  hard_idx = np.flatnonzero(hard)
  if len(hard_idx):
    regions_b[hard_idx] = _regions(grid[hard_idx], moved[hard_idx], n_regions[hard_idx])
  # Render both spectra (B's per-region tables are those of its source scene).
  flat_a, flat_b = _flat(regions), _flat(regions_b)
  a = _pick(bright_a, flat_a) + _pick(tex_a, flat_a) * _texture(texture, flat_a)
  a += _shading(rng, m, 0.3)
  s = source
  curve = _pick(bright_a[s], flat_b) ** _pick(gamma[s], flat_b) * _pick(gain[s], flat_b)
  b = _pick(offset[s], flat_b) + np.where(_pick(reverse[s], flat_b) > 0, 0.7 - curve, curve)
  texture_b = {k: v[s] for k, v in texture.items()}
  b += _pick(tex_b[s], flat_b) * _texture(texture_b, flat_b) + _shading(rng, m, 0.5)
  a = _blur(a, rng.choice([0.0, 0.5, 0.8], m))
  b = _blur(b, np.round(rng.uniform(0, 0.5 + 2 * d, m) * 2) / 2)
  a += rng.standard_normal(a.shape, np.float32) * np.float32(0.01)
  b += rng.standard_normal(b.shape, np.float32) * rng.uniform(
      0.01, 0.02 + 0.08 * d, (m, 1, 1)).astype(np.float32)
  # Crop: the other patch is misregistered by up to `shift` px.
  shift = int(round(1 + 3 * d))
  dx, dy = rng.integers(-shift, shift + 1, (2, m)) + MARGIN
  patches = np.empty((n, 2, base.PATCH, base.PATCH), np.uint8)
  to_u8 = lambda v: np.clip(np.rint(v * 255), 0, 255).astype(np.uint8)
  patches[:, 0] = to_u8(a[:, MARGIN:MARGIN + base.PATCH, MARGIN:MARGIN + base.PATCH])
  for i in range(n):
    patches[i, 1] = to_u8(b[i, dy[i]:dy[i] + base.PATCH, dx[i]:dx[i] + base.PATCH])
  return patches, labels


class RrlSynthetic(base.PatchPairBuilder, skip_registration=True):
  """Procedural cross-spectral pairs (see module docstring); no download."""
  OPTIONS = {'num_train': 20000, 'num_val': 2000, 'num_test': 4000, 'seed': 0,
             'difficulty': 0.5}
  INTEGER_OPTIONS = ('num_train', 'num_val', 'num_test', 'seed')
  CHUNK = 500

  @classmethod
  def option_problems(cls, options):
    for key in ('num_train', 'num_val', 'num_test'):
      if options[key] < 0:
        yield f'{key}={options[key]}: must be >= 0 (0 leaves the split out)'
    if not any(options[k] > 0 for k in ('num_train', 'num_val', 'num_test')):
      yield 'num_train=num_val=num_test=0: at least one split needs pairs'
    if not 0.0 <= options['difficulty'] <= 1.0:
      yield f'difficulty={options["difficulty"]}: must lie in [0, 1]'

  def _split_generators(self, dl_manager):
    o = self.options
    sizes = {'train': o['num_train'], 'val': o['num_val'], 'test': o['num_test']}
    return {split: self._generate_examples(split, index, sizes[split])
            for index, split in enumerate(('train', 'val', 'test')) if sizes[split] > 0}

  def _generate_examples(self, split, split_index, size):
    for start in range(0, size, self.CHUNK):
      n = min(self.CHUNK, size - start)
      patches, labels = generate(n, self.options['seed'], self.options['difficulty'],
                                 stream=split_index * 10**9 + start)
      yield from base.examples_from_arrays(patches, labels, prefix=f'{start:08d}-')
