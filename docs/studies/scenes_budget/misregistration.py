"""How much of each category's FPR95 comes from misregistered positive pairs?

The scene images are not perfectly registered (docs/studies/augmentation/): a
"matching" pair cut from a shifted region looks like a non-match. For every
positive pair of the fixed test samples (curve.py's), the VIS-NIR shift is
estimated by phase correlation of the two patches' gradient magnitudes (no
model); then FPR95 is recomputed from curve.py's saved scores with the clearly
shifted positives left out (all negatives kept). Run from the repository root:

  python docs/studies/scenes_budget/misregistration.py --workdir=W --curve=W_curve.json
"""
import json
import os

from absl import app, flags
import cv2
import numpy as np

from rrl_jax import cli
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


def main(_):
  cli.quiet_logging()
  config = curve.load_run_config(FLAGS.workdir)
  with open(FLAGS.curve) as f:
    figures = json.load(f)
  first = next(iter(figures.values()))
  _, tests = curve.test_samples(config, first['sample'], first['seed'])
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
