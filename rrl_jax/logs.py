"""The one home of log silencing: what the programs print besides their own lines.

- `quiet_logging()`: called inside each program's main; unless --verbosity was
  given: absl at WARNING (launch.main: ERROR, its progress bar is the console),
  TFDS's routine warnings and progress bars, the jax backend probe ("Unable to
  initialize backend 'tpu'"), Orbax's per-file INFO lines and Python's
  Deprecation/FutureWarnings silenced.
- `quiet_tfds()`: only TFDS's routine warnings (custom config, first build).
- `silenced()`: a block during which absl logging (Orbax's errors on a bad
  checkpoint) is dropped, because the caller reports the failure in one line.
- `drop_abandoned_restore_noise()` / `abandon(path)`: the late completions of
  a failed Orbax restore's in-flight reads, which would print thousands of
  tracebacks, are dropped; nothing else is.
"""
import contextlib
import logging as std_logging
import sys
import warnings

from absl import flags
from absl import logging

_CHATTY_LOGGERS = ('jax._src.xla_bridge', 'absl', 'orbax', 'orbax.checkpoint')
# TFDS warns on every custom BuilderConfig and before each first build.
_ROUTINE_TFDS = ('Using custom data configuration', 'Variant folder')


def _not_routine_tfds(record: std_logging.LogRecord) -> bool:
  return not str(record.msg).startswith(_ROUTINE_TFDS)


def quiet_tfds() -> None:
  """Drops TFDS's routine warnings (custom config, first build); keeps the rest."""
  logger = std_logging.getLogger('absl')
  if _not_routine_tfds not in logger.filters:
    logger.addFilter(_not_routine_tfds)


def quiet_logging(level: int = logging.WARNING) -> None:
  """Our lines only, unless --verbosity was passed (call inside main).

  `level`: the absl verbosity kept (logging.WARNING; launch.main: logging.ERROR).
  """
  if flags.FLAGS['verbosity'].present:
    return
  quiet_tfds()
  logging.set_verbosity(level)
  for name in _CHATTY_LOGGERS:
    std_logging.getLogger(name).setLevel(std_logging.WARNING)
  std_logging.getLogger('jax._src.xla_bridge').setLevel(std_logging.ERROR)
  warnings.filterwarnings('ignore', category=DeprecationWarning)
  warnings.filterwarnings('ignore', category=FutureWarning)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()


@contextlib.contextmanager
def silenced():
  """Silences absl logging (Orbax's) below FATAL for the block."""
  logger = std_logging.getLogger('absl')
  level = logger.level
  logger.setLevel(std_logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


_ABANDONED = []  # Step directories whose restore or save failed with I/O in flight.


def abandon(path: str) -> None:
  """Marks `path` as a failed restore or save: late errors naming it are dropped."""
  _ABANDONED.append(path)


def _is_abandoned_read_noise(exc: BaseException) -> bool:
  """Late completions of an abandoned restore's reads (their loop is closed)."""
  if isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed':
    return True  # Raised by asyncio's call_soon_threadsafe on a closed loop.
  return any(path in str(exc) for path in _ABANDONED)


def drop_abandoned_restore_noise() -> None:
  """Drops the noise of a failed restore's in-flight TensorStore reads. Idempotent.

  When one item fails, Orbax closes its event loop while the other reads are
  in flight; each later completion raises 'Event loop is closed' (printed via
  sys.unraisablehook: thousands of tracebacks for a real model) and asyncio
  logs 'Future exception was never retrieved'. Only those are dropped; any
  other unraisable exception or log record goes through unchanged.
  """
  if getattr(sys.unraisablehook, 'rrl_jax_filter', False):
    return
  previous = sys.unraisablehook

  def hook(args):
    if args.object is None and _is_abandoned_read_noise(args.exc_value):
      return
    previous(args)

  def mentions_abandoned(record):
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info
                                  and record.exc_info[1] is not None else '')
    return any(path in text for path in _ABANDONED) or bool(
        _ABANDONED and '_SignalingThread.run() raised' in record.getMessage())

  hook.rrl_jax_filter = True
  sys.unraisablehook = hook
  std_logging.getLogger('asyncio').addFilter(
      lambda r: not (r.exc_info and r.exc_info[1] is not None
                     and 'never retrieved' in r.getMessage()
                     and _is_abandoned_read_noise(r.exc_info[1])))
  # A failed save's other writers (Orbax threads) log after it was reported.
  for name in ('asyncio', 'absl'):
    std_logging.getLogger(name).addFilter(lambda r: not mentions_abandoned(r))
