"""Ours: rrl_jax.training.augment (the train step's augmentation) on the same sample."""
import jax, jax.numpy as jnp, numpy as np
from rrl_jax.training import augment
d = np.load('./country_sample.npz')
pairs = d['pairs']
cfg = augment.default_augment_config()
key = jax.random.key(0)
fn = jax.jit(lambda step, a, b: augment.augment_pairs(key, step, a, b, cfg))
outs = {'real': ([], []), 'same': ([], [])}
share = np.zeros(len(augment.IMAGE_OPS)); pshare = np.zeros(len(augment.PAIR_OPS))
for mode in ('real', 'same'):
  for i, s in enumerate(range(0, len(pairs), 64)):
    a = pairs[s:s + 64, 0, ..., None].astype(np.float32) / 255.0
    b = pairs[s:s + 64, 0 if mode == 'same' else 1, ..., None].astype(np.float32) / 255.0
    if mode == 'same':  # image ops only, as in the imgaug 'same' run
      c2 = augment.default_augment_config(); c2.pair_ops = (0, 0)
      fa, fb = augment.augment_pairs(key, i + 1000, jnp.asarray(a), jnp.asarray(b), c2)
    else:
      fa, fb = fn(i, a, b)
      plan = augment.plan_batch(key, i, 64, cfg)
      for side in 'ab':
        ops, valid = np.asarray(plan[side]['ops']), np.asarray(plan[side]['valid'])
        for o in range(len(augment.IMAGE_OPS)):
          share[o] += np.sum((ops == o) & valid)
      ops, valid = np.asarray(plan['pair']['ops']), np.asarray(plan['pair']['valid'])
      for o in range(len(augment.PAIR_OPS)):
        pshare[o] += np.sum((ops == o) & valid)
    outs[mode][0].append(np.round(np.asarray(fa)[..., 0] * 255).astype(np.uint8))
    outs[mode][1].append(np.round(np.asarray(fb)[..., 0] * 255).astype(np.uint8))
print('image op share', dict(zip(augment.IMAGE_OPS, np.round(share / (2 * len(pairs)), 4))))
print('pair op share', dict(zip(augment.PAIR_OPS, np.round(pshare / len(pairs), 4))))
np.savez('./aug_ours.npz', a=np.concatenate(outs['real'][0]), b=np.concatenate(outs['real'][1]),
         same_a=np.concatenate(outs['same'][0]), same_b=np.concatenate(outs['same'][1]))
