"""Multi-host start-up: `jax.distributed.initialize` from flags or the cluster.

One process per host (or per GPU) runs the same program; JAX's cluster
detection reads Slurm / TPU-pod / MPI environments, and explicit flags cover
everything else (e.g. two processes on 127.0.0.1 in the tests).
"""
import os
from typing import Optional

from absl import logging
import jax

_CLUSTER_ENV = ('SLURM_JOB_ID', 'TPU_WORKER_HOSTNAMES', 'MEGASCALE_COORDINATOR_ADDRESS',
                'OMPI_COMM_WORLD_SIZE')


def cluster_detected() -> bool:
  """True when a multi-process environment JAX can auto-detect is present."""
  if os.environ.get('SLURM_JOB_ID') and int(os.environ.get('SLURM_NTASKS', '1')) <= 1:
    return False  # A single-task Slurm job is a plain single-process run.
  return any(os.environ.get(k) for k in _CLUSTER_ENV)


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None,
               cpu_collectives: Optional[str] = None,
               auto: bool = True) -> None:
  """Starts the JAX distributed runtime when more than one process is used.

  Args:
    coordinator_address: 'host:port' of process 0; with num_processes and
      process_id it configures the runtime explicitly.
    num_processes: total number of processes.
    process_id: this process's index.
    cpu_collectives: 'gloo' (or 'mpi') to run cross-process collectives on CPU.
    auto: when no explicit address is given, initialise from the cluster
      environment (Slurm, TPU pod, MPI) if one is detected.
  """
  if cpu_collectives:
    jax.config.update('jax_cpu_collectives_implementation', cpu_collectives)
  if coordinator_address or (num_processes or 0) > 1:
    if not (coordinator_address and num_processes and process_id is not None):
      raise ValueError('Multi-process start needs all of --coordinator_address, '
                       '--num_processes and --process_id (or none of them, to '
                       'auto-detect Slurm / TPU pods).')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  elif auto and cluster_detected():
    jax.distributed.initialize()
  else:
    return
  logging.info('JAX distributed: process %d of %d, %d local / %d global devices.',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
