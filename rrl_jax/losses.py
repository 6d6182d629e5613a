"""Alias of `rrl_jax.training.losses` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import losses as _module

sys.modules[__name__] = _module
