"""Compute rows of launch.bench: peak matmul, train step, MLPP and full inference, pipeline."""
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from launch import bench_pipeline as bp
from launch.bench import timing
from launch.bench.workloads import (architecture_overrides, build_model, init_variables,
                                    make_mesh, random_patches, replicate, shard_batch)
from rrl_jax import pruning


def bench_infer(args, dtype: str, which: str, batch: int, full: bool):
  model = build_model(args, dtype)
  mesh = make_mesh(which)
  if batch % mesh.size:
    return None
  variables = init_variables(model)
  if full:
    variables = {'params': variables['params'],
                 'batch_stats': variables['batch_stats']}
    fn = lambda v, a, b: model.apply(v, a, b, train=False)  # all 8 outputs
  else:
    variables = pruning.inference_variables(variables, model)
    fn = lambda v, a, b: pruning.match_logit(model, v, a, b)
  variables = replicate(mesh, variables)
  xa, xb = shard_batch(mesh, *random_patches(batch, model.patch_size, args.seed))
  jitted = jax.jit(fn)
  row = timing.measure_compiled(
      lambda: jitted.lower(variables, xa, xb).compile(),
      lambda c: c(variables, xa, xb), batch, args, mesh.devices.flat,
      dict(part='full' if full else 'infer', model=args.model, dtype=dtype,
           devices=which,
           num_devices=mesh.size,
           params=pruning.count_parameters(variables['params'])))
  return row


def bench_train(args, dtype: str, which: str, batch: int, augment: bool):
  """The real training step (rrl_jax.training.step.make_train_step), nothing else.

  augment=True is the step training runs with configs/default.py (on-device
  augmentation on); False the pure step. Any failure to build it is raised.
  """
  from configs import default as default_config  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import losses
  from rrl_jax.training import optim  # pylint: disable=g-import-not-at-top
  from rrl_jax.training import step as ts  # pylint: disable=g-import-not-at-top
  mesh = make_mesh(which)
  if batch % mesh.size:
    return None
  config = default_config.get_config(args.model)
  config.model.update(architecture_overrides(args))
  config.dtype = dtype
  config.batch_size = batch
  config.recon_loss = args.recon_loss
  config.augment.enabled = augment
  model = ts.make_model(config)
  tx = optim.make_optimizer(config.optimizer)
  vgg = None
  if args.recon_loss == 'perceptual':
    from rrl_jax.training import vgg19  # pylint: disable=g-import-not-at-top
    vgg = vgg19.load_vgg19_params(os.path.expanduser(args.vgg19_weights))
  recon_loss = losses.make_recon_loss(args.recon_loss, vgg_params=vgg)
  xa, xb = random_patches(batch, model.patch_size, args.seed)
  labels = np.random.default_rng(args.seed).integers(0, 2, batch).astype(np.int32)
  state = ts.init_state(model, tx, config, mesh)
  step = ts.make_train_step(model, tx, config, mesh, jax.random.key(0),
                            recon_loss, lambda s: 2e-4)
  # The real step takes uint8 patches (it divides by 255 on device).
  batch_arrays = ts.global_batch({'xa': np.round(xa * 255).astype(np.uint8),
                                  'xb': np.round(xb * 255).astype(np.uint8),
                                  'label': labels}, mesh)
  weights = ts.loss_weights(config, mesh)
  holder = {'state': state}

  def call(compiled):
    holder['state'], metrics = compiled(holder['state'], batch_arrays, weights)
    return metrics

  part = 'train' if augment else 'trainpure'
  row = timing.measure_compiled(
      lambda: step.lower(holder['state'], batch_arrays, weights).compile(),
      call, batch, args, mesh.devices.flat,
      dict(part=part, model=args.model, dtype=dtype, devices=which,
           num_devices=mesh.size, recon_loss=args.recon_loss, augment=augment,
           step=f'{ts.make_train_step.__module__}.{ts.make_train_step.__name__}'))
  row['step_s'] = row['median_s']
  return row


def bench_peak(args, dtype: str):
  n = args.peak_n
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), np.float32)).astype(dtype)
  b = jnp.asarray(rng.standard_normal((n, n), np.float32)).astype(dtype)
  fn = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  start = time.perf_counter()
  compiled = fn.lower(a, b).compile()
  compile_s = time.perf_counter() - start
  times = timing.time_calls(lambda: compiled(a, b), max(args.repeats, 5), 1)
  row = dict(part='peak', dtype=dtype, devices='one', num_devices=1, batch=n,
             compile_s=compile_s)
  row.update(timing.summarize(times))
  row['achieved_flops'] = 2.0 * n ** 3 / row['min_s']  # best run: the ceiling
  return row


def bench_pipeline(args):
  rng = np.random.default_rng(0)
  n = args.pipeline_examples
  patches = rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8)
  labels = rng.integers(0, 2, n, dtype=np.int32)
  rates = [bp.measure(patches, labels, args.pipeline_batches,
                      global_batch_size=64, seed=0, mode='official', prefetch=2)
           for _ in range(max(1, min(args.repeats, 3)))]
  med = statistics.median(rates)
  return dict(part='pipeline', dtype='uint8', devices='host', num_devices=0,
              batch=64, pairs_per_s=med, spread=(max(rates) - min(rates)) / med,
              repeats=len(rates), rates=rates)
