"""Alias of `rrl_jax.evaluation.export` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.evaluation import export as _module

sys.modules[__name__] = _module
