"""SEN1-2 (SAR/optical) patch benchmark, paper protocol settings (authors' npy packs).

One train/test split (sne_{train,test}_image.npy + _label.npy in manual_dir). Batch 64,
40 epochs of N/64 random batches, perceptual loss, Keras Nadam lr 2e-4.
  python -m launch.main --config=configs/sen1_2.py --workdir=DIR \\
      --config.dataset.manual_dir=/path/to/npy_packs \\
      --config.vgg19_weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
--config.protocol=paper selects on the test split, as the official code does.
"""
from configs import default


def get_config(arg: str = ''):
  return default.paper_benchmark('sen1_2', arg)
