"""Shared test fixtures: compiled models and converted weights are built once per session."""
import os

import jax
import numpy as np
import pytest

from rrl_jax import xla_cpu
from rrl_jax.training.workdir import MIN_CACHED_COMPILE_SECS, enable_compilation_cache
from tests.train_helpers import CACHE

# The same XLA:CPU convolution runtime as every entry point (launch/*.py), set
# before the backend starts; subprocesses inherit it, so runs through
# `python -m launch.main` and in-process runs compute identically.
xla_cpu.apply_xla_flags()

# One persistent compilation cache for every test, and through the environment
# for every subprocess a test starts: many tests compile the same programs (the
# tiny train step above all), and compiling is most of the suite's time on a
# 2-core CPU.
enable_compilation_cache(os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', CACHE))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS',
                      str(MIN_CACHED_COMPILE_SECS))

# Compiling is still most of the suite's time, so tests compile with JAX's
# jax_disable_most_optimizations (XLA backend optimisation level 0: about 0.6x
# the compile time; results move in the last float32 bits). Modules marked
# `full_optimization` (numbers compared with Keras', the learning run) compile
# as users' runs do. JAX_DISABLE_MOST_OPTIMIZATIONS=0 runs the whole suite so.
# Subprocesses inherit the setting through the environment.
_DISABLE_MOST, _DISABLE_MOST_ENV = ('jax_disable_most_optimizations',
                                    'JAX_DISABLE_MOST_OPTIMIZATIONS')
os.environ.setdefault(_DISABLE_MOST_ENV, '1')
jax.config.update(_DISABLE_MOST, os.environ[_DISABLE_MOST_ENV].lower()
                  not in ('0', 'false', 'no', 'off'))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(REPO, '..', 'shared'))
KERAS_FIXTURES = os.path.join(SHARED, 'fixtures', 'keras_rrl')
KERAS_H5 = os.path.join(KERAS_FIXTURES, 'rrl_weights_seed0.h5')
KERAS_OUTPUTS = os.path.join(KERAS_FIXTURES, 'outputs_seed0.npz')
SHARED_DATA = os.path.join(SHARED, 'data')

# Reduced-width model for tests that are not about parity or counts.
SMALL_MODEL = dict(widths=(4, 8, 8, 16, 16), head_hidden=(16, 8))

# Parity is about float32 arithmetic: on GPU/TPU, matmuls must not drop to bf16.
jax.config.update('jax_default_matmul_precision', 'highest')


def require_path(path: str):
  """Skips the calling test with a clear reason when `path` is absent."""
  if not os.path.exists(path):
    pytest.skip(f'{path} is absent: this test needs ../shared beside the repository.')
  return path


@pytest.fixture(scope='module', autouse=True)
def xla_optimizations(request):
  """Default XLA optimisations for a module marked `full_optimization`.

  Its subprocesses too. In-memory compiled programs are dropped on the way in
  and out, so none compiled at the other level is reused (the persistent cache
  keys on the level).
  """
  if request.node.get_closest_marker('full_optimization') is None:
    yield
    return
  flag_before = jax.config.read(_DISABLE_MOST)
  env_before = os.environ[_DISABLE_MOST_ENV]
  jax.clear_caches()
  jax.config.update(_DISABLE_MOST, False)
  os.environ[_DISABLE_MOST_ENV] = '0'
  try:
    yield
  finally:
    jax.config.update(_DISABLE_MOST, flag_before)
    os.environ[_DISABLE_MOST_ENV] = env_before
    jax.clear_caches()


@pytest.fixture(scope='session')
def keras_variables():
  """Official Keras weights converted to Flax variables (once per session)."""
  from rrl_jax.convert import convert_keras_h5  # pylint: disable=g-import-not-at-top
  variables, meta = convert_keras_h5(require_path(KERAS_H5))
  return variables, meta


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
  """(model, random variables, checkpoint dir) of eval_helpers.TINY, once per session."""
  from eval_helpers import TINY, random_variables, save_tiny_checkpoint  # pylint: disable=g-import-not-at-top
  from rrl_jax.models import RRLNet  # pylint: disable=g-import-not-at-top
  model = RRLNet(**TINY)
  variables = random_variables(model)
  path = save_tiny_checkpoint(tmp_path_factory.mktemp('ckpt'), model, variables)
  return model, variables, path


@pytest.fixture(scope='session')
def keras_outputs():
  return dict(np.load(require_path(KERAS_OUTPUTS)))


def pytest_collection_modifyitems(items):
  """Modules marked `heavy` (whole training runs, subprocesses) run first.

  Longest first, by each module's `heavy(seconds=...)` estimate. Under
  README's `pytest -n 2 --dist loadfile` (with `--no-loadscope-reorder` from
  pytest.ini) the two workers take modules in this order, so the long ones
  start early and the short ones fill the end: both workers finish together
  instead of one waiting on a long module started last.
  """
  def expected_seconds(item):
    mark = item.get_closest_marker('heavy')
    return mark.kwargs['seconds'] if mark else 0
  items.sort(key=lambda item: -expected_seconds(item))
