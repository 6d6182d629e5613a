"""Real visible/thermal (LWIR) pairs from ../shared/data/roadscene.

The 'roadscene' dataset cuts keypoint patches and splits the images (not the
patches) into train and test by a seeded permutation.
"""
import os

from configs import default


def get_config(arg: str = ''):
  c = default.get_config()
  c.dataset.name = 'roadscene'
  c.dataset.manual_dir = os.path.abspath(os.path.join(default.SHARED_DATA, 'roadscene'))
  c.dataset.train_split = 'train'
  c.dataset.test_splits = ('test',)
  default.apply_paper_protocol(c)
  c.checkpoint_every = 500
  default.apply_arg(c, arg)
  return c
