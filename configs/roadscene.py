"""Real visible/thermal (LWIR) pairs from $RRL_JAX_DATA_DIR/roadscene.

RRL_JAX_DATA_DIR defaults to ../shared/data beside a source checkout; or pass
--config.dataset.manual_dir=DIR. The 'roadscene' dataset cuts keypoint patches
and splits the images (not the patches) into train and test by a seeded
permutation.
"""
from configs import default


def get_config(arg: str = ''):
  return default.paper_benchmark(
      'roadscene', arg, manual_dir=default.real_data_dir('roadscene'),
      after_protocol={'checkpoint_every': 500})
