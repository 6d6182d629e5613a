"""FPR95 per test category against training step, for every checkpoint of a run.

Each checkpoint is scored on fixed seeded samples of every test category: with
its BatchNorm moving averages (the paper's procedure; 'moving_rule' says how the
run kept them, rrl_jax/training/bn_moving.py), and with precise BN recalibrated
as the run's config says (README "Precise BN"). A run kept with the 'plain' rule
is also scored with the statistics the official 'zero_debiased' rule would have
kept ('moving_zero_debiased', converted exactly). Run from the repository root;
results are added to --out (JSON), so a rerun only scores what is missing.

  python docs/studies/scenes_budget/curve.py --workdir=W --out=W_curve.json
"""
import json
import os
import time

from absl import app, flags
import ml_collections
import numpy as np

from rrl_jax import logs
from rrl_jax import pruning
from rrl_jax import sharding
from rrl_jax.data import splits
from rrl_jax.evaluation import scoring
from rrl_jax.models import model_from_config
from rrl_jax.training import bn_moving
from rrl_jax.training import bn_recalibration
from rrl_jax import checkpoint_format

FLAGS = flags.FLAGS

def define_flags():
  """Only when run as a program (misregistration.py imports this module)."""
  flags.DEFINE_string('workdir', None, 'Training workdir (its checkpoints/ and config.json).')
  flags.DEFINE_string('out', None, 'JSON file the figures are added to.')
  flags.DEFINE_integer('sample', 3000, 'Pairs per category (fixed seeded sample; 0 = all).')
  flags.DEFINE_integer('seed', 0, 'Seed of the samples.')
  flags.DEFINE_list('steps', None, 'Only these steps (default: every checkpoint).')
  flags.DEFINE_integer('bn_batches', None, 'Precise BN over this many batches instead of '
                       "the run's config.bn_recalibration.batches (a paper-protocol run "
                       'keeps it off).')


METRICS = ('fpr95', 'auc', 'accuracy', 'precision', 'recall')
KINDS = ('moving', 'moving_zero_debiased', 'precise')


def scores_path(out, step):
  """Where the scores of one step go (beside --out; misregistration.py reads them)."""
  return f'{os.path.splitext(out)[0]}_scores_{step}.npz'


def test_samples(config, size, seed):
  """(run data, {split: (patches, labels)} fixed samples of the run's test splits).

  The samples are drawn from every pair of each split, also for a run whose
  dataset.test_max_pairs scored fewer (size 0 = every pair; the same size and
  seed give the run's own sample).
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.dataset.test_max_pairs = 0
  run_data = splits.load_data(config)  # the run's own training pairs and test splits
  return run_data, {s: splits.sample_pairs(*pl, size, seed) for s, pl in run_data['test'].items()}


def load_run_config(workdir):
  with open(os.path.join(workdir, 'config.json')) as f:
    return ml_collections.ConfigDict(json.load(f))


def row(result):
  out = {k: {m: v[m] for m in METRICS} for k, v in result['splits'].items()}
  out['mean_fpr95'] = result['mean']['fpr95']
  return out


def main(_):
  logs.quiet_logging()
  config = load_run_config(FLAGS.workdir)
  if FLAGS.bn_batches is not None:
    config.bn_recalibration.batches = FLAGS.bn_batches
  run_data, tests = test_samples(config, FLAGS.sample, FLAGS.seed)
  train = run_data['train']
  model = model_from_config(config.model.to_dict(), config.model_name)
  mesh = sharding.data_mesh()
  ckpt_dir = os.path.join(FLAGS.workdir, 'checkpoints')
  steps = sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit())
  if FLAGS.steps:
    steps = [s for s in steps if str(s) in FLAGS.steps]
  results = {}
  if os.path.exists(FLAGS.out):
    with open(FLAGS.out) as f:
      results = json.load(f)
  rule = bn_moving.rule(config)
  counts = None  # Moving-average updates per step of each layer: the model's, not the step's.
  for step in steps:
    entry = results.get(str(step), {})
    convert = rule == 'plain' and 'moving_zero_debiased' not in entry
    if entry and not convert:
      continue
    t0 = time.time()
    full, _ = checkpoint_format.load_variables(ckpt_dir, step)
    # Only the inference subtree is scored, so only its layers are recalibrated.
    variables = pruning.inference_variables(full, model)
    scores = {}
    if not entry:
      precise = bn_recalibration.for_run(model, variables, train, config, mesh)
      moving = scoring.evaluate_splits(model, variables, tests, 256, mesh,
                                       return_scores=True)
      recal = scoring.evaluate_splits(model, dict(variables, batch_stats=precise), tests,
                                      256, mesh, return_scores=True)
      entry = {'moving': row(moving), 'precise': row(recal), 'moving_rule': rule,
               'bn': bn_recalibration.settings(config), 'sample': FLAGS.sample,
               'seed': FLAGS.seed}
      scores.update({f'moving/{s}': v for s, v in moving['scores'].items()})
      scores.update({f'precise/{s}': v for s, v in recal['scores'].items()})
    if convert:
      counts = counts or bn_moving.updates_per_step(model, full)
      stats = bn_moving.plain_to_zero_debiased(variables['batch_stats'], step, counts)
      debiased = scoring.evaluate_splits(model, dict(variables, batch_stats=stats), tests,
                                         256, mesh, return_scores=True)
      entry.update(moving_rule=rule, moving_zero_debiased=row(debiased))
      scores.update({f'moving_zero_debiased/{s}': v
                     for s, v in debiased['scores'].items()})
    path = scores_path(FLAGS.out, step)
    if os.path.exists(path):
      with np.load(path) as old:
        scores = dict(old, **scores)
    np.savez(path, **scores)
    results[str(step)] = entry
    with open(FLAGS.out + '.tmp', 'w') as f:
      json.dump(results, f, indent=1)
    os.replace(FLAGS.out + '.tmp', FLAGS.out)
    print(f'step {step} ({time.time() - t0:.0f} s)', *(
        f'{kind}: ' + ' '.join(f'{s} {entry[kind][s]["fpr95"]:.1f}' for s in tests)
        for kind in KINDS if kind in entry), sep='\n  ', flush=True)


if __name__ == '__main__':
  define_flags()
  flags.mark_flags_as_required(['workdir', 'out'])
  app.run(main)
