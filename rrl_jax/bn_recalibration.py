"""Alias of `rrl_jax.training.bn_recalibration` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import bn_recalibration as _module

sys.modules[__name__] = _module
