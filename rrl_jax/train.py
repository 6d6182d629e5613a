"""Alias of `rrl_jax.training.train` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import train as _module

sys.modules[__name__] = _module
