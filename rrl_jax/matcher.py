"""Alias of `rrl_jax.evaluation.matcher` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.evaluation import matcher as _module

sys.modules[__name__] = _module
