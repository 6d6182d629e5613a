"""Keras weights (train.py) -> an rrl_jax workdir that curve.py and blur_probe.py score.

The workdir takes its config from an rrl_jax run of the same recipe (--like: its
data, test samples and precise-BN settings), with `bn_moving_average='plain'`:
tf.keras 2.x keeps its moving averages by the plain rule, so curve.py also reports
them converted exactly to the zero-debiased rule of the official Keras 2.2 / TF 1.x
run ('moving_zero_debiased'). Run with rrl_jax's venv from the repository root:

  python docs/studies/scenes_budget/keras/to_workdir.py --like=W3 \
      --keras_h5=seed1/weights_487.h5 --step=487 --workdir=K1
"""
import json
import os

from absl import app, flags

from rrl_jax import convert
from rrl_jax import checkpoint_format

flags.DEFINE_string('like', None, 'rrl_jax workdir whose config.json is reused.')
flags.DEFINE_string('keras_h5', None, 'Weights written by train.py.')
flags.DEFINE_integer('step', None, 'Training step the weights are from.')
flags.DEFINE_string('workdir', None, 'Workdir to create or add the step to.')
FLAGS = flags.FLAGS


def main(_):
  with open(os.path.join(FLAGS.like, 'config.json')) as f:
    config = json.load(f)
  config['bn_moving_average'] = 'plain'
  config['trained_by'] = f'Keras (tf.keras 2.15): {os.path.abspath(FLAGS.keras_h5)}'
  os.makedirs(FLAGS.workdir, exist_ok=True)
  with open(os.path.join(FLAGS.workdir, 'config.json'), 'w') as f:
    json.dump(config, f, indent=1)
  variables, meta = convert.convert_keras_h5(FLAGS.keras_h5, 'rrl_net')
  path = checkpoint_format.save_variables(os.path.join(FLAGS.workdir, 'checkpoints'), variables,
                                    meta, step=FLAGS.step)
  print('wrote', path)


if __name__ == '__main__':
  flags.mark_flags_as_required(['like', 'keras_h5', 'step', 'workdir'])
  app.run(main)
