"""Shared helpers of the training tests (tiny model, tiny data, shared cache)."""
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One persistent compilation cache for the whole test session and its
# subprocesses (conftest.py turns it on for every test; training configs name
# it too): a program compiles once, later tests load it.
CACHE = os.path.join(tempfile.gettempdir(), 'rrl_jax_test_jax_cache')


def tiny_config(**overrides):
  from configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config('test')
  c.compilation_cache_dir = CACHE
  for key, value in overrides.items():
    target = c
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return c


def config_flags_for(**overrides):
  """--config.* flags for launch.main equal to tiny_config(**overrides)."""
  flags = [f'--config={os.path.join(REPO, "configs", "test.py")}',
           f'--config.compilation_cache_dir={CACHE}']
  flags += [f'--config.{k}={v}' for k, v in overrides.items()]
  return flags


def cpu_devices_env(count=None):
  """Environment for a subprocess with `count` CPU devices (None: one).

  Keeps this process's other XLA flags (conftest.py's convolution choice), so
  a subprocess computes as the tests' own process and launch.main do. A
  one-device subprocess shares the persistent cache with them; one with more
  devices does not (the cache key includes the device topology).
  """
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  if count is not None:
    flags.append(f'--xla_force_host_platform_device_count={count}')
  return {'XLA_FLAGS': ' '.join(flags), 'JAX_PLATFORMS': 'cpu'}


def python_env(env=None):
  """This process's environment, the repository on PYTHONPATH, then `env`."""
  full_env = dict(os.environ)
  full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get('PYTHONPATH', '')
  full_env.update(env or {})
  return full_env


def run_python(args, env=None, timeout=600):
  return subprocess.run([sys.executable] + list(args), cwd=REPO, env=python_env(env),
                        capture_output=True, text=True, timeout=timeout)


def params_of(workdir, sub='checkpoints', step=None):
  from rrl_jax import checkpoint_format  # pylint: disable=g-import-not-at-top
  variables, _ = checkpoint_format.load_variables(os.path.join(workdir, sub), step)
  return variables


def max_abs_diff(a, b):
  import jax  # pylint: disable=g-import-not-at-top
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(la, lb))
