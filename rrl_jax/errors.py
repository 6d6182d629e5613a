"""Errors caused by the user's input, reported by the entry points as one line.

Every such error derives from `UserError` (the data, checkpoint, conversion,
export and VGG19 weight errors too, each defined beside its module); the
programs print `ERROR: <message>` and exit 1 for one. Anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
  """Bad input or a refused action; the message names the field/path and the fix."""


class ConfigError(UserError, ValueError):
  """A config field has an unknown name or an invalid value."""


class WorkdirError(UserError, OSError):
  """The run directory cannot be used (locked by another run, not writable)."""


class OutOfMemoryError(UserError):
  """The configured batch does not fit in device memory."""
