"""Real VIS-NIR scenes from ../shared/data/rgbnir_scenes (EPFL layout).

Patches are cut at keypoints by the 'scenes' dataset (same recipe as the
VIS-NIR benchmark, not the identical patches): train on country, evaluate on
the other categories present (field, forest, indoor, mountain).
"""
import os

from configs import default


def get_config(arg: str = ''):
  return default.paper_benchmark(
      'scenes', arg, train_split='country',
      test_splits=('field', 'forest', 'indoor', 'mountain'),
      manual_dir=os.path.abspath(os.path.join(default.SHARED_DATA, 'rgbnir_scenes')),
      val_fraction=0.05, after_protocol={'checkpoint_every': 500})
