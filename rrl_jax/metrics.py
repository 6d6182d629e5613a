"""Alias of `rrl_jax.evaluation.metrics` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.evaluation import metrics as _module

sys.modules[__name__] = _module
