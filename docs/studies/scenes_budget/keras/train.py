"""Trains keras_rrl.py the way the official train_model.py does, with a chosen seed.

The official recipe (REFERENCE "Training", README of this folder): the training
pairs shuffled with numpy seed 100, then each step draws 64 distinct random
pairs from numpy's global generator; the official augmentation (imgaug 0.4,
docs/studies/augmentation/official_ops.py, new augmenters per batch,
the NIR patch passed as a segmentation map to the pair ops); inputs / 255;
train_on_batch with 6 x BCE + 2 x 0.1 MSE, Keras Nadam 2e-4, batch 64.
`--seed` seeds TensorFlow (the initial weights) and imgaug (the augmentation);
`--data_seed` (100, the official value) sets the pair order.

  python train.py --pairs=country.npz --seed=1 --out=DIR --save=487 \
      --fixture_h5=../shared/fixtures/keras_rrl/rrl_weights_seed0.h5
"""
import argparse
import os
import sys
import time

import imgaug
import numpy as np

import check_fixtures
import keras_rrl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'augmentation'))
import official_ops  # pylint: disable=g-import-not-at-top,wrong-import-position


def draw_batch(vis, nir, labels, size):
  """64 distinct random pairs from numpy's global generator (the official draw)."""
  chosen = []
  while len(chosen) < size:
    i = np.random.randint(0, len(labels))
    if i not in chosen:
      chosen.append(i)
  return vis[chosen], nir[chosen], labels[chosen].astype(np.float32)


def augment(vis, nir):
  vis, nir = official_ops.augment_pairs(vis, nir)
  return (np.asarray(vis, np.float32) / 255, np.asarray(nir, np.float32) / 255)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--pairs', required=True, help='npz with pairs (N, 2, 64, 64) uint8, labels (N,)')
  p.add_argument('--fixture_h5', required=True, help='official fixture h5 (layer order of the output files)')
  p.add_argument('--out', required=True)
  p.add_argument('--seed', type=int, required=True)
  p.add_argument('--data_seed', type=int, default=100)
  p.add_argument('--steps', type=int, default=487)
  p.add_argument('--save', default='487', help='comma-separated steps to write weights at')
  p.add_argument('--batch', type=int, default=64)
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  save = {int(s) for s in args.save.split(',')}

  with np.load(args.pairs) as d:
    pairs, labels = d['pairs'], d['labels']
  np.random.seed(args.data_seed)
  order = np.random.permutation(len(labels))  # what shuffle(img); shuffle(label) do
  pairs, labels = pairs[order], labels[order]
  vis, nir = pairs[:, 0, ..., None], pairs[:, 1, ..., None]

  imgaug.seed(args.seed)
  model, builder = keras_rrl.build(seed=args.seed)
  check_fixtures.compile_model(model)
  log = open(os.path.join(args.out, 'train.log'), 'a')
  t0 = time.time()
  for step in range(1, args.steps + 1):
    a, b, y = draw_batch(vis, nir, labels, args.batch)
    a, b = augment(a, b)
    losses = model.train_on_batch([a, b], [y[:, None]] * 6 + [a, b])
    if step % 25 == 0 or step == 1:
      line = (f'step {step} loss {losses[0]:.4f} stage5_bce {losses[1]:.4f} '
              f'{(time.time() - t0) / step:.2f} s/step')
      print(line, flush=True)
      log.write(line + '\n')
      log.flush()
    if step in save:
      path = os.path.join(args.out, f'weights_{step}.h5')
      keras_rrl.write_h5(builder, path, order_from=args.fixture_h5)
      print('wrote', path, flush=True)


if __name__ == '__main__':
  main()
