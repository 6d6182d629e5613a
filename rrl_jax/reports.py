"""Alias of `rrl_jax.evaluation.reports` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.evaluation import reports as _module

sys.modules[__name__] = _module
