"""Real VIS-NIR scenes from $RRL_JAX_DATA_DIR/rgbnir_scenes (EPFL layout).

RRL_JAX_DATA_DIR defaults to ../shared/data beside a source checkout; or pass
--config.dataset.manual_dir=DIR.

Patches are cut at keypoints by the 'scenes' dataset (same recipe as the
VIS-NIR benchmark, not the identical patches): train on country, evaluate on
the other categories present (field, forest, indoor, mountain).
"""
from configs import default


def get_config(arg: str = ''):
  return default.paper_benchmark(
      'scenes', arg, train_split='country',
      test_splits=('field', 'forest', 'indoor', 'mountain'),
      manual_dir=default.real_data_dir('rgbnir_scenes'),
      val_fraction=0.05, after_protocol={'checkpoint_every': 500})
