"""The benchmarks' workloads: meshes, random inputs, the model as --model/--widths give it."""
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np

from rrl_jax import sharding
from rrl_jax.models import RRLNet, variants


def make_mesh(which: str):
  """'one': the first device; 'all': every device (rrl_jax.sharding.data_mesh)."""
  return sharding.data_mesh(jax.devices()[:1] if which == 'one' else None)


def shard_batch(mesh, *arrays):
  batched = sharding.batch_sharding(mesh)
  return tuple(jax.device_put(a, batched) for a in arrays)


def replicate(mesh, tree):
  return jax.device_put(tree, sharding.replicated(mesh))


def random_patches(batch: int, patch: int, seed: int):
  rng = np.random.default_rng(seed)
  xa = rng.random((batch, patch, patch, 1), dtype=np.float32)
  xb = rng.random((batch, patch, patch, 1), dtype=np.float32)
  return xa, xb


def init_variables(model: RRLNet, seed: int = 0):
  x = jnp.zeros((2, model.patch_size, model.patch_size, 1), jnp.float32)
  return jax.jit(lambda k: model.init(k, x, x, train=True))(jax.random.key(seed))


def architecture_overrides(args) -> Dict[str, Any]:
  """--widths / --head_hidden when given (else the model's defaults)."""
  kw = {}
  if args.widths:
    kw['widths'] = tuple(args.widths)
  if args.head_hidden:
    kw['head_hidden'] = tuple(args.head_hidden)
  return kw


def build_model(args, dtype: str):
  kw = architecture_overrides(args)
  if dtype == 'bfloat16':
    kw['dtype'] = jnp.bfloat16
  return variants.build(args.model, **kw)
