"""Named model variants: the six networks and RRL-Net's ablations (README "Model zoo").

A variant is 'NAME' (a network of the registry) or 'rrl_net:ABLATION', each
ablation removing one paper component while the rest stays (rrl_net.py):
  rrl_net:no_ae            no autoencoder (no decoders, no reconstruction loss)
  rrl_net:no_mgla          every MGLA is the identity
  rrl_net:no_fil           |fA - fB| per stage instead of FIL (no module heads)
  rrl_net:no_module_heads  no module heads
  rrl_net:final_head_only  only the final stage head (no stage heads 3-4)
  rrl_net:shared_branches  one encoder/decoder for both inputs

`resolve(variant) -> (model_name, kwargs)`; `build(variant, **overrides)` the
module. REDUCED_KWARGS are small widths per network for tests and smoke runs.
"""
from typing import Any, Dict, Tuple

NETWORKS = ('scfdm', 'afd_net', 'mfd_net', 'efr_net', 'fil_net', 'rrl_net', 'kgl_net')

RRL_ABLATIONS: Dict[str, Dict[str, Any]] = {
    'no_ae': {'autoencoder': False},
    'no_mgla': {'mgla': False},
    'no_fil': {'fil': False, 'module_heads': ()},
    'no_module_heads': {'module_heads': ()},
    'final_head_only': {'stage_heads': (5,)},
    'shared_branches': {'shared_branches': True},
}

# The official training script's optimizer per network (all at lr 2e-4).
# 'adam' is optax.adam with epsilon 1e-7; Keras 2.2's Adam adds epsilon before
# the bias correction (an effective epsilon of 1e-7 / sqrt(1 - beta_2**t),
# tending to 1e-7), which matters only for near-zero gradients early in training.
OPTIMIZERS = {'scfdm': 'keras_nadam', 'afd_net': 'keras_nadam',
              'mfd_net': 'adam', 'efr_net': 'adam', 'fil_net': 'keras_nadam',
              'rrl_net': 'keras_nadam', 'kgl_net': 'adam_per_network'}

# Small widths (a few thousand to ~100k parameters): seconds per CPU step.
REDUCED_KWARGS: Dict[str, Dict[str, Any]] = {
    'rrl_net': {'widths': (4, 8, 8, 16, 16), 'head_hidden': (16, 8)},
    'scfdm': {'widths': (4, 8, 8, 8, 8, 8), 'head_hidden': (16, 8)},
    'afd_net': {'widths': (4, 8, 8, 16), 'head_hidden': (16, 8)},
    'mfd_net': {'feature_widths': (4, 4, 8, 8, 8),
                'diff_widths': (4, 8, 8, 8, 8, 8), 'fuse_width': 8,
                'head_hidden': (16, 8)},
    'efr_net': {'widths': (4, 8, 8, 16), 'head_hidden': (16, 8)},
    'fil_net': {'widths': (4, 4, 8, 8, 16), 'metric_widths': (8, 16, 16, 32, 32),
                'head_hidden': (16, 8)},
    'kgl_net': {'widths': (4, 8, 8, 16), 'dim_desc': 8, 'metric_hidden': (16, 8)},
}


def all_variants() -> Tuple[str, ...]:
  return NETWORKS + tuple(f'rrl_net:{a}' for a in RRL_ABLATIONS)


def resolve(variant: str) -> Tuple[str, Dict[str, Any]]:
  """'fil_net' -> ('fil_net', {}); 'rrl_net:no_ae' -> ('rrl_net', {...})."""
  name, _, ablation = variant.strip().partition(':')
  if name not in NETWORKS or (ablation and name != 'rrl_net') or (
      ablation and ablation not in RRL_ABLATIONS):
    raise ValueError(f'Unknown model variant {variant!r}; known: '
                     f'{", ".join(all_variants())}.')
  return name, dict(RRL_ABLATIONS[ablation]) if ablation else {}


def build(variant: str, reduced: bool = False, **overrides):
  """The linen module of `variant` (reduced: REDUCED_KWARGS widths)."""
  from rrl_jax.models import get_model  # pylint: disable=g-import-not-at-top
  name, kwargs = resolve(variant)
  if reduced:
    kwargs = {**REDUCED_KWARGS[name], **kwargs}
  kwargs.update(overrides)
  return get_model(name, **kwargs)


def output_names(variant: str) -> Tuple[str, ...]:
  """Names of the variant's training outputs (= its loss terms)."""
  return tuple(build(variant).output_names)
