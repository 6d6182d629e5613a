"""Alias of `rrl_jax.training.checkpoints` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import checkpoints as _module

sys.modules[__name__] = _module
