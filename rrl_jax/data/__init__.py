"""Cross-spectral patch-pair datasets (README, "Datasets"): TFDS builders, loading, pipeline.

  patches, labels = rrl_jax.data.open_split('synthetic', 'train', data_dir=...)  # read by rows
  it = rrl_jax.data.pipeline.BatchIterator(patches, labels, global_batch_size=64, seed=0)
"""
from rrl_jax.data.errors import (DataError, DataFormatError, ManualFilesMissingError, OptionError,
                                 PairListError)
from rrl_jax.data.loading import (BUILDERS, get_builder, list_splits, load_split, open_built,
                                  open_split, prepare)
