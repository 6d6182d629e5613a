"""Does the model call "sharp VIS against blurred NIR" a non-match? (a measurement)

The error gallery of a first-epoch checkpoint shows field's hardest positives as
sharp VIS texture against an almost textureless, blurred NIR patch, each scored
near 0 (README point 6). This measures it on curve.py's fixed test samples:

- sharpness: per pair, the NIR/VIS ratio of the gradient energy (mean squared
  Sobel response of each patch; ../augmentation/sharpness.py), for the hardest 5 % of positives (the ones
  FPR95 must accept), the other positives and the negatives;
- the model: the same checkpoint (BatchNorm moving averages, as the paper
  scores) rescoring the sample with the VIS patch Gaussian-blurred (sigma 1, 2
  px: the VIS patch made as soft as NIR) or, as a control, the NIR patch
  blurred (the gap made larger). If blurring VIS lifts the hardest positives'
  scores and FPR95 falls, the model is rejecting blur differences, not content.

Run from the repository root (the step must be a checkpoint of the run):

  python docs/studies/scenes_budget/blur_probe.py --workdir=W --step=487 --out=W_blur_487.json
  python docs/studies/scenes_budget/blur_probe.py --workdir=W --sharpness_only --out=W_sharpness.json
"""
import json
import os
import sys

from absl import app, flags
import cv2
import numpy as np

from rrl_jax import logs
from rrl_jax import pruning
from rrl_jax import sharding
from rrl_jax.evaluation import metrics
from rrl_jax.evaluation import scoring
from rrl_jax.models import model_from_config
from rrl_jax.training import bn_moving
from rrl_jax import checkpoint_format

import curve  # pylint: disable=g-bad-import-order  (this folder)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                'augmentation'))
from sharpness import energy_ratio  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string('workdir', None, 'Training workdir (its checkpoints/ and config.json).')
flags.DEFINE_integer('step', None, 'Checkpoint step to probe.')
flags.DEFINE_list('splits', ['field', 'mountain'], 'Test categories to probe.')
flags.DEFINE_list('sigmas', ['1', '2'], 'Gaussian blur sigmas (px).')
flags.DEFINE_integer('sample', 3000, "Pairs per category (curve.py's fixed sample).")
flags.DEFINE_string('out', None, 'JSON output.')
flags.DEFINE_bool('sharpness_only', False, 'Only the model-free sharpness gap, for the '
                  'training pairs and every test category (no --step needed).')
FLAGS = flags.FLAGS

HARDEST = 0.05  # share of positives FPR95 must accept beyond the threshold
FLAT_NIR = 0.1  # a pair "sharp VIS, flat NIR" below this NIR/VIS gradient-energy ratio


def blurred(patches, which, sigma):
  """A copy of (N, 2, 64, 64) uint8 pairs with patch `which` (0 VIS, 1 NIR) blurred."""
  out = patches.copy()
  for i in range(len(out)):
    b = cv2.GaussianBlur(out[i, which].astype(np.float32), (0, 0), sigma,
                         borderType=cv2.BORDER_REFLECT)
    out[i, which] = np.clip(np.rint(b), 0, 255).astype(np.uint8)
  return out


def groups(labels, scores):
  """Index sets: hardest 5 % of positives (lowest scores), other positives, negatives."""
  pos = np.flatnonzero(labels == 1)
  hard = pos[np.argsort(scores[pos], kind='stable')[:int(round(HARDEST * len(pos)))]]
  return {'hardest_positives': hard, 'other_positives': np.setdiff1d(pos, hard),
          'negatives': np.flatnonzero(labels == 0)}


def describe(labels, scores, index_sets):
  return {'fpr95': metrics.fpr95(labels, scores),
          **{f'mean_score_{k}': float(np.mean(scores[v])) for k, v in index_sets.items()}}


def sharpness_gap(run_data, tests):
  """Per split, positives and negatives: median ratio and share below FLAT_NIR."""
  out = {}
  for split, (patches, labels) in [('train', run_data['train'])] + sorted(tests.items()):
    patches, labels = np.asarray(patches), np.asarray(labels)
    ratio = energy_ratio(patches)
    out[split] = {f'{name}_{stat}': value
                  for name, keep in (('positives', labels == 1), ('negatives', labels == 0))
                  for stat, value in (('median_ratio', float(np.median(ratio[keep]))),
                                      ('share_flat_nir', float(np.mean(ratio[keep] < FLAT_NIR))))}
    out[split]['pairs'] = int(len(labels))
    print(split, out[split], flush=True)
  return out


def main(_):
  if FLAGS.step is None and not FLAGS.sharpness_only:
    raise app.UsageError('--step is required (or --sharpness_only).')
  logs.quiet_logging()
  config = curve.load_run_config(FLAGS.workdir)
  run_data, tests = curve.test_samples(config, FLAGS.sample, 0)
  if FLAGS.sharpness_only:
    with open(FLAGS.out, 'w') as f:
      json.dump({'sample': FLAGS.sample, 'flat_nir_below': FLAT_NIR,
                 'splits': sharpness_gap(run_data, tests)}, f, indent=1)
    return
  model = model_from_config(config.model.to_dict(), config.model_name)
  full, _ = checkpoint_format.load_variables(os.path.join(FLAGS.workdir, 'checkpoints'), FLAGS.step)
  variables = pruning.inference_variables(full, model)
  statistics = 'moving averages'
  if bn_moving.rule(config) == 'plain':  # e.g. a tf.keras run (keras/to_workdir.py)
    # Scored with what the official zero-debiased rule would have kept, as curve.py's
    # 'moving_zero_debiased' (converted exactly).
    stats = bn_moving.plain_to_zero_debiased(
        variables['batch_stats'], FLAGS.step, bn_moving.updates_per_step(model, full))
    variables = dict(variables, batch_stats=stats)
    statistics = 'moving averages, kept plain, converted to zero-debiased'
  mesh = sharding.data_mesh()
  score = lambda p: np.asarray(scoring.score_pairs(model, variables, p, 256, mesh))
  result = {'workdir': FLAGS.workdir, 'step': FLAGS.step, 'sample': FLAGS.sample,
            'bn_statistics': statistics, 'splits': {}}
  for split in FLAGS.splits:
    patches, labels = (np.asarray(a) for a in tests[split])
    base = score(patches)
    index_sets = groups(labels, base)
    ratio = energy_ratio(patches)
    entry = {'nir_over_vis_gradient_energy_median': {
        k: float(np.median(ratio[v])) for k, v in index_sets.items()},
             'as_is': describe(labels, base, index_sets)}
    for sigma in (float(s) for s in FLAGS.sigmas):
      for name, which in (('vis_blurred', 0), ('nir_blurred', 1)):
        entry[f'{name}_sigma{sigma:g}'] = describe(
            labels, score(blurred(patches, which, sigma)), index_sets)
    result['splits'][split] = entry
    print(split, json.dumps(entry, indent=1), flush=True)
  with open(FLAGS.out, 'w') as f:
    json.dump(result, f, indent=1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'out'])
  app.run(main)
