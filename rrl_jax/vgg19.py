"""Alias of `rrl_jax.training.vgg19` (the module moved there; docs/architecture.md)."""
import sys

from rrl_jax.training import vgg19 as _module

sys.modules[__name__] = _module
