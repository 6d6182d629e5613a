"""Real visible/thermal (LWIR) pairs from ../shared/data/roadscene.

The 'roadscene' dataset cuts keypoint patches and splits the images (not the
patches) into train and test by a seeded permutation.
"""
import os

from configs import default

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), '..', 'shared', 'data')


def get_config(arg: str = ''):
  c = default.get_config()
  c.dataset.name = 'roadscene'
  c.dataset.manual_dir = os.path.abspath(os.path.join(SHARED_DATA, 'roadscene'))
  c.dataset.train_split = 'train'
  c.dataset.test_splits = ('test',)
  c.batch_size = 64
  c.num_epochs = 40
  c.recon_loss = 'perceptual'
  c.checkpoint_every = 500
  if arg == 'test':
    default.apply_test_overrides(c)
  return c
