"""VIS-NIR patch benchmark, paper protocol settings (authors' npy packs).

Train on country, report the eight test categories and their mean. Batch 64,
40 epochs of N/64 random batches, perceptual loss, Keras Nadam lr 2e-4.
  python -m launch.main --config=configs/vis_nir.py --workdir=DIR \\
      --config.dataset.manual_dir=/path/to/vis_nir_npy \\
      --config.vgg19_weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
With --config.protocol=paper selection uses val_data.npy in 8 slices of
10,000 pairs, as the official code does.
"""
from configs import default

from rrl_jax.evaluation.scoring import VIS_NIR_TEST as TEST_CATEGORIES


def get_config(arg: str = ''):
  return default.paper_benchmark(
      'vis_nir', arg, train_split='country', test_splits=TEST_CATEGORIES,
      paper_selection_split='val', selection_slice_size=10000)
