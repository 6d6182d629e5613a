"""Dump a fixed sample of country training pairs (uint8) for the augmentation study."""
import numpy as np
from rrl_jax import data as data_lib
from configs import scenes
c = scenes.get_config()
p, l = data_lib.load_split('scenes', 'country', manual_dir=c.dataset.manual_dir)
rng = np.random.default_rng(0)
idx = rng.choice(len(l), 4096, replace=False)
np.savez('./country_sample.npz', pairs=p[idx], labels=l[idx])
print(p.shape, l.mean())
