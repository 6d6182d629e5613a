"""Alias of `rrl_jax.training.augment` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import augment as _module

sys.modules[__name__] = _module
