"""Common training config; experiment configs start from this one.

`get_config(arg)`: arg is a comma-separated list of options, each either
  test          a tiny model (reduced widths), tiny in-memory data, a few steps;
  MODEL         a model variant (rrl_jax/models/variants.py): one of scfdm,
                afd_net, mfd_net, efr_net, fil_net, rrl_net, or an RRL-Net
                ablation rrl_net:no_ae | no_mgla | no_fil | no_module_heads |
                final_head_only | shared_branches,
e.g. --config=configs/vis_nir.py:fil_net, --config=configs/scenes.py:rrl_net:no_ae,test
(the config path ends at the first ':'). Every experiment config takes the same
options. No MODEL: RRL-Net as in the paper. A model brings the official recipe
for that network (`apply_model`): its optimizer (Nadam, or Adam for MFD-Net and
EFR-Net), one loss term per output (weight 1); the dataset config's learning
rate (paper protocol: 2e-4, as for every network) stays.
"""
import dataclasses
import os

import ml_collections

from rrl_jax.training.augment import default_augment_config
from rrl_jax.training.losses import LOSS_NAMES
from rrl_jax.models import variants
from rrl_jax.training.optim import default_optimizer_config

# The real data of configs/scenes.py and roadscene.py: $RRL_JAX_DATA_DIR, else
# ../shared/data beside a source checkout.
DATA_DIR_ENV = 'RRL_JAX_DATA_DIR'
CHECKOUT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), '..', 'shared', 'data')
VGG19_DEFAULT = '~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'


def real_data_dir(name: str) -> str:
  """Folder `name` of the real data: under $RRL_JAX_DATA_DIR, else ../shared/data.

  Given even when absent (configs load anywhere, e.g. for --show_config or a
  --config.dataset.manual_dir override); loading the dataset then fails with
  one error naming the missing folder and how to point at it.
  """
  return os.path.abspath(os.path.join(os.environ.get(DATA_DIR_ENV) or CHECKOUT_DATA, name))


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model_name = 'rrl_net'
  c.model = ml_collections.ConfigDict(dict(
      widths=(16, 32, 64, 128, 256), stage_heads=(3, 4, 5),
      module_heads=(3, 4, 5), head_hidden=(512, 256)))

  c.dataset = ml_collections.ConfigDict(dict(
      name='synthetic', data_dir='', manual_dir='',
      builder_kwargs=ml_collections.ConfigDict(),
      train_split='train', test_splits=('test',),
      val_split='',          # '' = carve a seeded validation split from train.
      val_fraction=0.05, val_max_pairs=10000,
      # > 0: score a fixed seeded sample of this many pairs of each test split
      # (the same pairs for every seed and model: quick comparisons).
      test_max_pairs=0,
      # 'paper' protocol: select on this split ('' = the test splits), FPR95
      # averaged over consecutive slices of selection_slice_size (0 = whole).
      paper_selection_split='', selection_slice_size=0,
      # Train on the matching pairs only (KGL-Net: its negatives are mined).
      train_positives_only=False))

  c.batch_size = 64            # Global batch, over all devices and hosts.
  c.eval_batch_size = 256
  c.num_epochs = 40            # Epoch = N / batch_size random batches.
  c.num_train_steps = -1       # > 0 overrides num_epochs.
  c.data_mode = 'official'     # 'official' random batches | 'epoch' shuffles.

  c.loss_weights = ml_collections.ConfigDict({n: 1.0 for n in LOSS_NAMES})
  c.recon_loss = 'perceptual'  # 'perceptual' (VGG19 block5_conv4) | 'mse'.
  c.pixel_weight = 0.1
  c.vgg19_weights = VGG19_DEFAULT
  c.optimizer = default_optimizer_config()
  c.augment = default_augment_config()
  # Precise BN (README "Precise BN"): before every selection evaluation and
  # after training, BatchNorm statistics recomputed over `batches` training
  # batches of `batch_size` pairs (0: config.batch_size), `augment`ed or not.
  # batches: -1 = auto (16 for the clean protocol, 0 = moving averages for
  # the paper protocol), 0 = off, K > 0 = K batches.
  c.bn_recalibration = ml_collections.ConfigDict(dict(
      batches=-1, batch_size=0, augment=False))
  # How the BatchNorm moving averages are kept (rrl_jax/training/bn_moving.py):
  # 'zero_debiased' as the official Keras 2.2 / TF 1.x code, or 'plain' (the
  # average started at 0 / 1, as tf.keras 2.x and flax; runs saved before this
  # option existed used it).
  c.bn_moving_average = 'zero_debiased'

  c.dtype = 'float32'          # 'bfloat16': bf16 compute, float32 params.
  c.seed = 0
  c.num_devices = -1           # -1: every device (single process: a prefix).
  c.protocol = 'clean'         # 'clean' (val from train) | 'paper' (test).
  c.checkpoint_every = 1000
  c.keep = 3
  c.eval_every = -1            # -1: every epoch; 0: only at the end.
  c.log_every = 50
  c.compilation_cache_dir = '~/.cache/rrl_jax/jax_cache'  # '' or 'none': off.

  apply_arg(c, arg)
  return c


def parse_arg(arg: str):
  """'fil_net,test' -> ('fil_net', True); '' -> ('', False)."""
  variant, test = '', False
  for option in filter(None, (o.strip() for o in (arg or '').split(','))):
    if option == 'test':
      test = True
      continue
    try:
      variants.resolve(option)
    except ValueError:
      raise ValueError(
          f'Unknown config argument {option!r} (in {arg!r}): expected a '
          'comma-separated list of "test" and at most one model, one of '
          f'{", ".join(variants.all_variants())}.') from None
    if variant:
      raise ValueError(f'Config argument {arg!r} names two models '
                       f'({variant!r}, {option!r}); give one.')
    variant = option
  return variant, test


def apply_arg(c: ml_collections.ConfigDict, arg: str) -> None:
  """Applies a config argument (module docstring): the model, then 'test'."""
  variant, test = parse_arg(arg)
  if variant:
    apply_model(c, variant)
  if test:
    apply_test_overrides(c)


def apply_model(c: ml_collections.ConfigDict, variant: str) -> None:
  """The model `variant` with the official training recipe for its network.

  RRL-Net ablations add their switch to c.model and keep only the loss terms
  of the outputs left. Other networks get c.model = the module's architecture
  defaults (overridable, e.g. --config.model.widths=...), the optimizer of the
  official training script and one weight-1 term per output. Without decoders
  the reconstruction loss is unused: recon_loss='mse' needs no VGG19 file.
  """
  name, kwargs = variants.resolve(variant)
  model = variants.build(variant)
  c.model_name = name
  if name == 'rrl_net':
    c.model.update(kwargs)
  else:
    c.model = ml_collections.ConfigDict(_architecture_fields(model))
  c.optimizer.name = variants.OPTIMIZERS[name]
  names = tuple(model.output_names)
  if set(c.loss_weights.keys()) != set(names):
    c.loss_weights = ml_collections.ConfigDict({n: 1.0 for n in names})
  if not any(n.startswith('recon') for n in names):
    c.recon_loss = 'mse'
  if name == 'kgl_net':
    apply_kgl_recipe(c)


def apply_kgl_recipe(c: ml_collections.ConfigDict) -> None:
  """KGL-Net's official train_KGL-Net.py: batches of 256 matching pairs (the
  negatives are mined in the batch), Adam lr 5e-3 (descriptor) / 5e-5
  (metric), data_aug4 (the Keras line's augmentation with ScaleX/Y 0.95-1.1),
  100 epochs (200 on OS), PyTorch BatchNorm moving averages."""
  c.batch_size = 256
  c.num_epochs = 200 if c.dataset.name == 'os' else 100
  c.dataset.train_positives_only = True
  c.optimizer.name = 'adam_per_network'
  c.optimizer.learning_rate = 5e-3
  c.optimizer.metric_learning_rate = 5e-5
  c.optimizer.epsilon = 1e-8
  c.optimizer.schedule = 'constant'
  c.augment.scale = (0.95, 1.1)
  c.bn_moving_average = 'plain'
  c.bn_recalibration.batches = 0


def _architecture_fields(model):
  """The module's hyperparameters with defaults (not name/parent/dtype)."""
  out = {}
  for f in dataclasses.fields(model):
    if f.name in ('parent', 'name', 'dtype'):
      continue
    value = getattr(model, f.name)
    if isinstance(value, list):
      value = tuple(value)
    if isinstance(value, (bool, int, float, str, tuple)):
      out[f.name] = value
  return out


def apply_paper_protocol(c: ml_collections.ConfigDict) -> None:
  """The official training recipe (docs/training.md): batch 64,
  40 epochs of N/64 random batches, VGG19 perceptual loss, Keras Nadam lr 2e-4.
  Which BatchNorm statistics are evaluated follows config.protocol (precise BN
  under 'clean', the official moving averages under 'paper')."""
  c.batch_size = 64
  c.num_epochs = 40
  c.data_mode = 'official'
  c.recon_loss = 'perceptual'
  c.optimizer.name = 'keras_nadam'
  c.optimizer.learning_rate = 2e-4


def paper_benchmark(name: str, arg: str = '', *, train_split: str = 'train',
                    test_splits=('test',), after_protocol=None,
                    **dataset) -> ml_collections.ConfigDict:
  """A paper benchmark config: dataset `name` (with `dataset` fields), the
  official recipe (apply_paper_protocol), top-level `after_protocol` fields,
  then `arg` (model / test overrides)."""
  c = get_config()
  c.dataset.name = name
  c.dataset.update(dataset)
  c.dataset.train_split = train_split
  c.dataset.test_splits = tuple(test_splits)
  apply_paper_protocol(c)
  c.update(after_protocol or {})
  apply_arg(c, arg)
  return c


def apply_test_overrides(c: ml_collections.ConfigDict) -> None:
  """Tiny model (variants.REDUCED_KWARGS), tiny in-memory data, a few steps: seconds on one CPU."""
  c.model.update(variants.REDUCED_KWARGS[c.model_name])
  c.dataset.name = 'toy'
  c.dataset.builder_kwargs = ml_collections.ConfigDict({'num_pairs': 64})
  c.dataset.test_splits = ('test',)
  c.dataset.val_fraction = 0.25
  c.batch_size = 8
  c.eval_batch_size = 32
  c.num_train_steps = 4
  c.recon_loss = 'mse'
  c.checkpoint_every = 2
  c.keep = 3
  c.eval_every = 2
  c.log_every = 1
  c.compilation_cache_dir = ''
  c.bn_recalibration.batches = 2
