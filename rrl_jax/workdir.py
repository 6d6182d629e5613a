"""Alias of `rrl_jax.training.workdir` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import workdir as _module

sys.modules[__name__] = _module
