"""Real visible/thermal (LWIR) pairs from ../shared/data/roadscene.

The 'roadscene' dataset cuts keypoint patches and splits the images (not the
patches) into train and test by a seeded permutation.
"""
import os

from configs import default


def get_config(arg: str = ''):
  return default.paper_benchmark(
      'roadscene', arg,
      manual_dir=os.path.abspath(os.path.join(default.SHARED_DATA, 'roadscene')),
      after_protocol={'checkpoint_every': 500})
