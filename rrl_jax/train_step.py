"""Alias of `rrl_jax.training.step` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import step as _module

sys.modules[__name__] = _module
