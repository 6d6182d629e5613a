"""Alias of `rrl_jax.training.optim` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import optim as _module

sys.modules[__name__] = _module
