"""Reference: the official augmentation (official_ops.py: imgaug 0.4.0, the settings
of the official utils.gen4) applied to a fixed sample; records per-op usage shares."""
import collections
import numpy as np
import imgaug

from official_ops import image_ops, pair_ops

d = np.load('./country_sample.npz')
pairs = d['pairs']
counts = collections.Counter()

def counted(seq, tag):
  for ch in seq:
    orig = ch.augment_batch_
    def wrapped(batch, *a, _orig=orig, _name=f'{tag}:{ch.__class__.__name__}:{ch.name}', **k):
      counts[_name] += batch.nb_rows
      return _orig(batch, *a, **k)
    ch.augment_batch_ = wrapped
  return seq

imgaug.seed(0)
np.random.seed(0)
out_a, out_b, same_a, same_b = [], [], [], []
for mode in ('real', 'same'):
  for s in range(0, len(pairs), 64):
    a = pairs[s:s + 64, 0, ..., None].copy()
    b = (pairs[s:s + 64, 0 if mode == 'same' else 1, ..., None]).copy()
    # new augmenters per batch as the official gen4 does
    s1, s2 = image_ops(), pair_ops()
    if mode == 'real':
      counted(s1, 'image'); counted(s2, 'pair')
    b_aug = s1(images=b)
    a_aug = s1(images=a)
    a2, b2 = s2(images=a_aug, segmentation_maps=b_aug)
    b2 = np.asarray(b2)
    if mode == 'real':
      out_a.append(a2); out_b.append(b2)
    else:
      # misregistration: image ops only (the pair ops are joint)
      same_a.append(a_aug); same_b.append(b_aug)
print('segmap output dtype', b2.dtype, b2.shape, b2.min(), b2.max())
n_images = 2 * len(pairs)
print({k: round(v / (n_images if k.startswith('image') else len(pairs)), 4) for k, v in sorted(counts.items())})
np.savez('./aug_imgaug.npz', a=np.concatenate(out_a)[..., 0], b=np.concatenate(out_b)[..., 0].astype(np.uint8),
         same_a=np.concatenate(same_a)[..., 0], same_b=np.concatenate(same_b)[..., 0],
         op_share={k: v for k, v in counts.items()})
