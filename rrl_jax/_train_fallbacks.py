"""TEMPORARY stand-ins used by rrl_jax.train only while the real modules
(losses, optim, augment, data, evaluation, reports, metrics, vgg19) are being
written. Remove once they have landed."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

LOSS_NAMES = ('stage3', 'stage4', 'stage5', 'module3', 'module4', 'module5',
              'recon_a', 'recon_b')


class VGG19WeightsError(ValueError):
  pass


def load_vgg19_params(path):
  raise VGG19WeightsError(
      f'VGG19 weights not found or unreadable at {path!r}. Fix: pass '
      '--config.vgg19_weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 '
      'or use --config.recon_loss=mse.')


def bce_with_logits(logits, labels):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits.reshape(-1),
                                                     labels.astype(jnp.float32)))


def make_recon_loss(kind, vgg_params=None, pixel_weight=0.1):
  del kind, vgg_params, pixel_weight
  return lambda recon, target: jnp.mean(jnp.square(recon - target))


def loss_terms(outputs, labels, xa, xb, recon_loss):
  terms = {}
  for name in LOSS_NAMES:
    if name not in outputs:
      continue
    if name == 'recon_a':
      terms[name] = recon_loss(outputs[name], xa)
    elif name == 'recon_b':
      terms[name] = recon_loss(outputs[name], xb)
    else:
      terms[name] = bce_with_logits(outputs[name], labels)
  return terms


def weighted_total(terms, weights):
  return sum(weights[k] * v for k, v in terms.items())


def default_optimizer_config():
  return ml_collections.ConfigDict(dict(
      name='keras_nadam', learning_rate=2e-4, schedule='constant',
      warmup_steps=0, decay_steps=0, grad_clip_norm=0.0, momentum=0.9))


def make_optimizer(cfg, total_steps=None):
  del total_steps
  lr = cfg.learning_rate
  name = cfg.name
  if name == 'sgd':
    tx = optax.sgd(lr, momentum=cfg.momentum or None)
  elif name == 'adam':
    tx = optax.adam(lr)
  else:
    tx = optax.nadam(lr, eps=1e-7)
  if cfg.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
  return tx


def default_augment_config():
  return ml_collections.ConfigDict(dict(enabled=True))


def augment_pairs(rng, step, xa, xb, cfg):
  """Per-pair random flips keyed by (run key, step, global index)."""
  del cfg
  idx = jnp.arange(xa.shape[0])
  step_key = jax.random.fold_in(rng, step)

  def one(i, a, b):
    k = jax.random.fold_in(step_key, i)
    flip = jax.random.bernoulli(k)
    a = jnp.where(flip, a[:, ::-1], a)
    b = jnp.where(flip, b[:, ::-1], b)
    return a, b
  return jax.vmap(one)(idx, xa, xb)


def _synthetic(n, seed):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
  a = np.kron(base, np.ones((8, 8), np.uint8))
  labels = (np.arange(n) % 2).astype(np.int32)
  other = np.roll(a, 1, axis=0)
  b = np.where(labels[:, None, None] == 1, 255 - a, 255 - other)
  noise = rng.integers(0, 20, b.shape)
  b = np.clip(b.astype(np.int32) + noise, 0, 255).astype(np.uint8)
  return np.stack([a, b], 1), labels


def load_split(name, split, *, data_dir=None, manual_dir=None, **kw):
  del data_dir, manual_dir
  if name != 'synthetic':
    raise ValueError(f'dataset {name!r} not available yet (fallback).')
  n = kw.get('num_pairs', {'train': 2048}.get(split, 512))
  return _synthetic(n, {'train': 0, 'val': 1, 'test': 2}.get(split, 3))


class BatchIterator:
  """Random batches per step, this process's contiguous rows."""

  def __init__(self, patches, labels, *, global_batch_size, seed, mode='official',
               process_index=0, process_count=1):
    self.patches, self.labels = patches, labels
    self.gbs, self.seed = global_batch_size, seed
    self.pi, self.pc = process_index, process_count
    self.steps_per_epoch = max(1, len(labels) // global_batch_size)
    self._step = 0

  def get_state(self):
    return {'step': self._step}

  def set_state(self, state):
    self._step = int(state['step'])

  def __iter__(self):
    return self

  def __next__(self):
    rng = np.random.default_rng([self.seed, self._step])
    idx = rng.choice(len(self.labels), self.gbs, replace=False)
    local = self.gbs // self.pc
    idx = idx[self.pi * local:(self.pi + 1) * local]
    self._step += 1
    p = self.patches[idx]
    return {'xa': p[:, 0, :, :, None], 'xb': p[:, 1, :, :, None],
            'label': self.labels[idx].astype(np.int32)}


def fpr95(labels, scores):
  labels = np.asarray(labels)
  order = np.argsort(-np.asarray(scores), kind='stable')
  l = labels[order]
  tpr = np.cumsum(l) / max(l.sum(), 1)
  fpr = np.cumsum(1 - l) / max((1 - l).sum(), 1)
  return float(100 * np.interp(0.95, tpr, fpr))


def score_pairs(model, variables, patches, batch_size, mesh=None):
  del mesh
  fn = jax.jit(lambda v, a, b: model.apply(v, a, b, train=False, score_only=True))
  out = []
  for i in range(0, len(patches), batch_size):
    p = patches[i:i + batch_size].astype(np.float32) / 255.0
    out.append(np.asarray(jax.nn.sigmoid(fn(variables, p[:, 0, ..., None],
                                            p[:, 1, ..., None]))).reshape(-1))
  return np.concatenate(out)


def evaluate_splits(model, variables, splits, batch_size, mesh=None):
  res = {}
  for name, (p, l) in splits.items():
    res[name] = {'fpr95': fpr95(l, score_pairs(model, variables, p, batch_size, mesh)),
                 'num_pairs': int(len(l))}
  res['mean_fpr95'] = float(np.mean([r['fpr95'] for r in res.values()]))
  return res


def write_reports(outdir, results, **kw):
  os.makedirs(outdir, exist_ok=True)
  path = os.path.join(outdir, 'results.json')
  with open(path, 'w') as f:
    json.dump({'results': results, **{k: str(v) for k, v in kw.items()}}, f, indent=1)
  return path
