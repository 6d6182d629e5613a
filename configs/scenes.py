"""Real VIS-NIR scenes from ../shared/data/rgbnir_scenes (EPFL layout).

Patches are cut at keypoints by the 'scenes' dataset (same recipe as the
VIS-NIR benchmark, not the identical patches): train on country, evaluate on
the other categories present (field, forest, indoor, mountain).
"""
import os

from configs import default


def get_config(arg: str = ''):
  c = default.get_config()
  c.dataset.name = 'scenes'
  c.dataset.manual_dir = os.path.abspath(os.path.join(default.SHARED_DATA, 'rgbnir_scenes'))
  c.dataset.train_split = 'country'
  c.dataset.test_splits = ('field', 'forest', 'indoor', 'mountain')
  c.dataset.val_fraction = 0.05
  default.apply_paper_protocol(c)
  c.checkpoint_every = 500
  default.apply_arg(c, arg)
  return c
