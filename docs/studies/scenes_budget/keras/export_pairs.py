"""Writes the run's training pairs (country) to an npz for train.py (run with rrl_jax's venv).

  python docs/studies/scenes_budget/keras/export_pairs.py --workdir=W --out=country.npz
"""
import json

from absl import app, flags
import ml_collections
import numpy as np

from rrl_jax.data import splits

flags.DEFINE_string('workdir', None, 'An rrl_jax scenes run (its config.json names the data).')
flags.DEFINE_string('out', None, 'npz to write: pairs (N, 2, 64, 64) uint8, labels (N,).')
FLAGS = flags.FLAGS


def main(_):
  with open(f'{FLAGS.workdir}/config.json') as f:
    config = ml_collections.ConfigDict(json.load(f))
  pairs, labels = splits.load_data(config)['train']
  np.savez(FLAGS.out, pairs=np.asarray(pairs, np.uint8), labels=np.asarray(labels))
  print(FLAGS.out, pairs.shape, 'positives', float(np.mean(labels)))


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'out'])
  app.run(main)
