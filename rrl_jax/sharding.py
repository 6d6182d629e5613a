"""The one data-parallel layout: a 1-D mesh whose axis is DATA_AXIS.

Batches are sharded on DATA_AXIS over every device of every process; variables
are replicated and XLA inserts the gradient all-reduce (README, "Training").
"""
from typing import Any, Optional, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

DATA_AXIS = 'data'


def data_mesh(devices: Optional[Sequence[Any]] = None) -> Mesh:
  """A 1-D mesh named DATA_AXIS over `devices` (default: all)."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()),
              (DATA_AXIS,))


def make_mesh(num_devices: int = -1) -> Mesh:
  """The training mesh: every device, or the first `num_devices` (one process)."""
  devices = jax.devices()
  if num_devices and num_devices > 0:
    if jax.process_count() > 1:
      raise ValueError('config.num_devices only applies to single-process runs.')
    devices = devices[:num_devices]
  return data_mesh(devices)


def local_mesh(mesh: Mesh) -> Mesh:
  """This process's devices of `mesh`: evaluation, where every process scores all."""
  return data_mesh([d for d in mesh.devices.flat
                    if d.process_index == jax.process_index()])


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Rows split over DATA_AXIS."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
