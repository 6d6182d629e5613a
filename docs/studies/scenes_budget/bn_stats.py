"""BatchNorm moving averages against population statistics, layer by layer.

For one checkpoint of a run, every BatchNorm layer of the inference subtree is
compared under three statistics: the moving averages the run trained (momentum
0.99, over augmented batches), population statistics over a large seeded share
of the training pairs without augmentation (what test pairs look like) and with
the training augmentation, and the run's precise BN (README "Precise BN").
Per layer: mean over channels of |mean difference| / population std, and the
median of the variance ratio. Run from the repository root:

  python docs/studies/scenes_budget/bn_stats.py --workdir=W --step=974 --out=W_bn.json
"""
import json

from absl import app, flags
import jax
import numpy as np
from flax import traverse_util

from rrl_jax import logs
from rrl_jax import pruning
from rrl_jax import sharding
from rrl_jax.data import splits
from rrl_jax.models import model_from_config
from rrl_jax.training import bn_recalibration
from rrl_jax import checkpoint_format

import curve  # pylint: disable=g-bad-import-order  (this folder)

flags.DEFINE_string('workdir', None, 'Training workdir.')
flags.DEFINE_integer('step', None, 'Checkpoint step.')
flags.DEFINE_integer('batches', 32, 'Population batches.')
flags.DEFINE_integer('batch_size', 256, 'Pairs per population batch.')
flags.DEFINE_string('out', None, 'JSON output.')
FLAGS = flags.FLAGS

EPS = 1e-3  # Keras BatchNormalization epsilon


def population(model, variables, train, mesh, batches, augment_cfg=None):
  it = bn_recalibration.training_batches(*train, FLAGS.batch_size, 1, batches)
  return bn_recalibration.recalibrate(model, variables, it, mesh, augment_cfg=augment_cfg,
                                      num_batches=batches)


def compare(stats, reference):
  """{layer: {'mean_shift': ..., 'var_ratio': ...}} of stats against reference."""
  a = traverse_util.flatten_dict(jax.tree.map(np.asarray, stats), sep='/')
  b = traverse_util.flatten_dict(jax.tree.map(np.asarray, reference), sep='/')
  out = {}
  for key in sorted(b):
    if not key.endswith('/mean'):
      continue
    layer = key[:-len('/mean')]
    std = np.sqrt(b[layer + '/var'] + EPS)
    out[layer] = {'channels': int(b[key].size),
                  'mean_shift': float(np.mean(np.abs(a[key] - b[key]) / std)),
                  'var_ratio': float(np.median((a[layer + '/var'] + EPS) /
                                               (b[layer + '/var'] + EPS)))}
  return out


def main(_):
  logs.quiet_logging()
  config = curve.load_run_config(FLAGS.workdir)
  model = model_from_config(config.model.to_dict(), config.model_name)
  mesh = sharding.data_mesh()
  train = splits.load_data(config)['train']
  variables, _ = checkpoint_format.load_variables(f'{FLAGS.workdir}/checkpoints', FLAGS.step)
  variables = pruning.inference_variables(variables, model)
  moving = variables['batch_stats']
  clean = population(model, variables, train, mesh, FLAGS.batches)
  augmented = population(model, variables, train, mesh, FLAGS.batches, config.augment)
  precise = bn_recalibration.for_run(model, variables, train, config, mesh)
  result = {'step': FLAGS.step, 'population_pairs': FLAGS.batches * FLAGS.batch_size,
            'moving_vs_clean': compare(moving, clean),
            'moving_vs_augmented': compare(moving, augmented),
            'augmented_vs_clean': compare(augmented, clean),
            'precise_vs_clean': compare(precise, clean)}
  with open(FLAGS.out, 'w') as f:
    json.dump(result, f, indent=1)
  kinds = [k for k in result if '_vs_' in k]
  print('layer'.ljust(44) + ''.join(k.rjust(26) for k in kinds))
  for layer in result['moving_vs_clean']:
    print(layer[-44:].ljust(44) + ''.join(
        f'{result[k][layer]["mean_shift"]:12.3f}{result[k][layer]["var_ratio"]:14.3f}'
        for k in kinds))


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'step', 'out'])
  app.run(main)
