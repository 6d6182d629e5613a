"""Errors caused by the user's input, reported by the entry points as one line.

`launch/main.py` prints `ERROR: <message>` and exits 1 for a `UserError`;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Bad input or a refused action; the message names the field/path and the fix."""


class ConfigError(UserError, ValueError):
  """A config field has an unknown name or an invalid value."""


class WorkdirError(UserError, OSError):
  """The run directory cannot be used (locked by another run, not writable)."""


class OutOfMemoryError(UserError):
  """The configured batch does not fit in device memory."""
