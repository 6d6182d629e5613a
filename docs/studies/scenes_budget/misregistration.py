"""How much of each category's FPR95 comes from misregistered positive pairs?

Also: which source image each sampled test pair was cut from (the scene
builder's keypoints and pair draws, replayed), and per image the share of the
category's hardest positives (the lowest-scored 5 %, the ones FPR95 must accept).

The scene images are not perfectly registered (docs/studies/augmentation/): a
"matching" pair cut from a shifted region looks like a non-match. For every
positive pair of the fixed test samples (curve.py's), the VIS-NIR shift is
estimated by phase correlation of the two patches' gradient magnitudes (no
model); then FPR95 is recomputed from curve.py's saved scores with the clearly
shifted positives left out (all negatives kept). Run from the repository root:

  python docs/studies/scenes_budget/misregistration.py --workdir=W --curve=W_curve.json
"""
import glob
import hashlib
import json
import os
import zlib

from absl import app, flags
import cv2
import numpy as np

from rrl_jax import logs
from rrl_jax.data import scenes
from rrl_jax.data.pair_lists import read_grey
from rrl_jax.evaluation import metrics

import curve  # pylint: disable=g-bad-import-order  (this folder)

flags.DEFINE_string('workdir', None, 'Training workdir (its config.json).')
flags.DEFINE_string('curve', None, 'curve.py --out file (scores beside it).')
flags.DEFINE_float('shift_px', 3.0, 'A positive is "misregistered" above this shift.')
flags.DEFINE_string('out', None, 'JSON output (default: beside --curve).')
FLAGS = flags.FLAGS

MIN_RESPONSE = 0.1  # phase-correlation peaks below this are not trusted (flat patches)


def _gradient(x):
  x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0)
  return np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))


def pair_shift(pair):
  """Estimated VIS->other shift (px) of one (2, 64, 64) pair; NaN when untrusted."""
  a, b = (_gradient(p).astype(np.float64) for p in pair)
  if a.std() < 1 or b.std() < 1:
    return np.nan
  window = np.outer(np.hanning(pair.shape[-2]), np.hanning(pair.shape[-1]))
  (dx, dy), response = cv2.phaseCorrelate(a, b, window)
  return float(np.hypot(dx, dy)) if response > MIN_RESPONSE else np.nan


def source_images(category_dir, options=None):
  """{sha1 of a pair's bytes: image name} for every pair the scene builder cuts."""
  o = dict(scenes.RrlScenes.OPTIONS, **(options or {}))
  out = {}
  for vis_path in sorted(glob.glob(os.path.join(category_dir, '*_rgb.jpg'))):
    visible = read_grey(vis_path)
    other = read_grey(vis_path[:-len('_rgb.jpg')] + '_nir.jpg')
    keypoints, _ = scenes.select_keypoints(visible, o['max_keypoints'], o['min_distance'])
    name = os.path.basename(vis_path)
    rng = np.random.default_rng([o['seed'], zlib.crc32(name.encode())])
    for patches, _ in scenes.scene_pairs(visible, other, keypoints, o['negative_distance'], rng):
      out[hashlib.sha1(np.ascontiguousarray(patches, np.uint8).tobytes()).hexdigest()] = name[:4]
  return out


def hardest_positive_images(labels, scores, images, share=0.05):
  """{image: (positives, share of the category's lowest-scored `share` of positives)}."""
  pos = np.flatnonzero(labels == 1)
  hardest = pos[np.argsort(scores[pos])[:max(1, int(round(share * len(pos))))]]
  names = sorted(set(images[pos]))
  return {n: (int(np.sum(images[pos] == n)), float(np.mean(images[hardest] == n)))
          for n in names}


def main(_):
  logs.quiet_logging()
  config = curve.load_run_config(FLAGS.workdir)
  with open(FLAGS.curve) as f:
    figures = json.load(f)
  first = next(iter(figures.values()))
  _, tests = curve.test_samples(config, first['sample'], first.get('seed', 0))
  shifts = {s: np.array([pair_shift(p) if l else np.nan for p, l in zip(*pl)])
            for s, pl in tests.items()}
  out = {'shift_px': FLAGS.shift_px, 'categories': {}, 'steps': {}}
  for s, (_, labels) in tests.items():
    pos = shifts[s][labels == 1]
    out['categories'][s] = {
        'positives': int((labels == 1).sum()), 'trusted': int(np.isfinite(pos).sum()),
        'median_shift_px': float(np.nanmedian(pos)),
        'share_misregistered': float(np.nanmean(pos > FLAGS.shift_px))}
  for step in sorted(figures, key=int):
    scores = np.load(curve.scores_path(FLAGS.curve, step))
    out['steps'][step] = {}
    for kind in ('moving', 'precise'):
      row = {}
      for s, (_, labels) in tests.items():
        keep = ~((labels == 1) & (shifts[s] > FLAGS.shift_px))
        sc = scores[f'{kind}/{s}']
        row[s] = {'fpr95': metrics.fpr95(labels, sc),
                  'fpr95_registered': metrics.fpr95(labels[keep], sc[keep])}
      out['steps'][step][kind] = row
  last = max(figures, key=int)
  scores = np.load(curve.scores_path(FLAGS.curve, last))
  out['hardest_positives'] = {'step': int(last)}
  for s, (patches, labels) in tests.items():
    lookup = source_images(os.path.join(config.dataset.manual_dir, s))
    images = np.array([lookup.get(hashlib.sha1(np.ascontiguousarray(p).tobytes()).hexdigest(), '?')
                       for p in patches])
    per_image = {kind: hardest_positive_images(labels, scores[f'{kind}/{s}'], images)
                 for kind in ('moving', 'precise')}
    rows = {}
    for name, (count, share) in per_image['precise'].items():
      shift = shifts[s][(labels == 1) & (images == name)]
      rows[name] = {'positives': count, 'hardest_share_precise': share,
                    'hardest_share_moving': per_image['moving'][name][1],
                    'median_shift_px': float(np.nanmedian(shift)) if np.isfinite(shift).any() else None,
                    'untrusted_share': float(np.mean(np.isnan(shift)))}
    out['hardest_positives'][s] = rows
    top = sorted(rows.items(), key=lambda kv: -kv[1]['hardest_share_precise'])[:4]
    print(f'{s} step {last}, images holding the hardest 5 % of positives (precise BN): '
          + ', '.join(f'{n} {100 * r["hardest_share_precise"]:.0f} % (median shift '
                      f'{r["median_shift_px"] or float("nan"):.1f} px, '
                      f'{100 * r["untrusted_share"]:.0f} % flat)' for n, r in top))
  path = FLAGS.out or os.path.splitext(FLAGS.curve)[0] + '_misregistration.json'
  with open(path, 'w') as f:
    json.dump(out, f, indent=1)
  print(json.dumps(out['categories'], indent=1))
  for step, kinds in out['steps'].items():
    for kind, row in kinds.items():
      print(f'step {step} {kind}: ' + ', '.join(
          f'{s} {r["fpr95"]:.1f} -> {r["fpr95_registered"]:.1f}' for s, r in row.items()))


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'curve'])
  app.run(main)
