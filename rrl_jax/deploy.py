"""Alias of `rrl_jax.evaluation.deploy` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.evaluation import deploy as _module

sys.modules[__name__] = _module
