"""Alias of `rrl_jax.training.metric_writers` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import metric_writers as _module

sys.modules[__name__] = _module
