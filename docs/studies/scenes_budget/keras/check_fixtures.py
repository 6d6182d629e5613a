"""Checks keras_rrl.py against the official fixtures (../shared/fixtures/keras_rrl).

1. write_h5 of the official weights reproduces the fixture file (layer order,
   weight names and values: the layout rrl_jax's converter reads).
2. The official weights give the official outputs: inference mode (moving
   statistics) and training mode (batch statistics), all 8 outputs.
3. The training replay: from the official initial weights, three train_on_batch
   steps (Keras Nadam 2e-4, 6 BCE + 0.1 x MSE) give the official losses and weights.

  python check_fixtures.py --fixtures=../shared/fixtures/keras_rrl  (from the repository root)
"""
import argparse
import os
import tempfile

import h5py
import numpy as np
import tensorflow as tf

import keras_rrl


def compile_model(model):
  def recon(y, p):
    return 0.1 * tf.reduce_mean(tf.square(y - p), -1)
  model.compile(optimizer=tf.keras.optimizers.legacy.Nadam(learning_rate=2e-4),
                loss=['binary_crossentropy'] * 6 + [recon, recon])


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--fixtures', required=True)
  args = p.parse_args()
  fx = args.fixtures
  h5 = os.path.join(fx, 'rrl_weights_seed0.h5')
  worst = {}

  model, builder = keras_rrl.build(h5)
  assert len(builder.layers) == 182, len(builder.layers)
  # Before any training-mode call, which moves the BatchNorm moving statistics.
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'roundtrip.h5')
    keras_rrl.write_h5(builder, path, order_from=h5)
    with h5py.File(path, 'r') as a, h5py.File(h5, 'r') as b:
      layer_names = keras_rrl.strings(b.attrs['layer_names'])
      assert keras_rrl.strings(a.attrs['layer_names']) == layer_names
      for name in layer_names:
        weights = keras_rrl.strings(b[name].attrs['weight_names'])
        assert keras_rrl.strings(a[name].attrs['weight_names']) == weights, name
        for w in weights:
          assert np.array_equal(a[name][w][()], b[name][w][()]), (name, w)
  print('write_h5: same layer order, weight names and values as the fixture')

  out = np.load(os.path.join(fx, 'outputs_seed0.npz'), allow_pickle=True)
  names = [str(n) for n in out['out_names']]
  for mode, training in (('infer', False), ('trainmode', True)):
    got = model([out['x1'], out['x2']], training=training)
    for n, g in zip(names, got):
      err = float(np.max(np.abs(np.asarray(g).reshape(out[f'{mode}_{n}'].shape)
                                - out[f'{mode}_{n}'])))
      worst[f'{mode}/{n}'] = err
  print('outputs, max |diff|:', {k: f'{v:.1e}' for k, v in worst.items()})
  assert max(worst.values()) < 2e-5, worst

  rp = np.load(os.path.join(fx, 'train_replay_seed0.npz'), allow_pickle=True)
  model, builder = keras_rrl.build()
  for name, layer in builder.layers.items():
    layer.set_weights([rp[f'init/{name}/{keras_rrl.weight_key(w)}'] for w in layer.weights])
  compile_model(model)
  losses = []
  for i in range(3):
    xa = rp['trainsteps_x1_u8'][i] / np.float32(255)
    xb = rp['trainsteps_x2_u8'][i] / np.float32(255)
    y = rp['trainsteps_y'][i].astype(np.float32)[:, None]
    losses.append(model.train_on_batch([xa, xb], [y] * 6 + [xa, xb]))
  losses = np.asarray(losses)
  loss_err = float(np.max(np.abs(losses - rp['trainsteps_losses'])))
  errs = {}
  for key in rp.keys():
    if key.startswith('after3/'):
      _, name, w = key.split('/')
      layer = builder.layers[name]
      got = [v for v in layer.weights if keras_rrl.weight_key(v) == w][0]
      errs[key] = float(np.max(np.abs(got.numpy() - rp[key])))
  for kind in sorted({k.split('/')[-1] for k in errs}):
    worst_key = max((k for k in errs if k.endswith('/' + kind)), key=errs.get)
    print(f'  {kind}: worst |diff| {worst_key} {errs[worst_key]:.2e}')
  weight_err = max(errs.values())
  print(f'replay: losses max |diff| {loss_err:.2e}; weights after 3 steps max '
        f'|diff| {weight_err:.2e}')
  # As in tests/test_train_replay.py: a rounding-level gradient (the bias of a
  # conv feeding a BatchNorm has an exactly zero one) becomes a Nadam step of
  # about lr = 2e-4 whose sign is the noise, so weights can differ by up to
  # ~3 lr after 3 steps; a wrong update rule moves every weight by more.
  assert loss_err < 1e-4 and weight_err < 3 * 2e-4 * 2, (loss_err, weight_err)


if __name__ == '__main__':
  main()
