"""Errors raised on bad dataset input: each message names the file, line or option."""
from typing import Sequence

from rrl_jax.errors import UserError


class DataError(UserError, ValueError):
  """Base class: input data that cannot become a patch-pair dataset."""


class ManualFilesMissingError(DataError, FileNotFoundError):
  """Manually downloaded files are missing; names each one."""

  def __init__(self, dataset: str, missing: Sequence[str], instructions: str):
    self.missing = list(missing)
    lines = '\n'.join(f'  missing: {p}' for p in self.missing)
    super().__init__(
        f'{dataset}: {len(self.missing)} required file(s) not found:\n{lines}\n'
        f'How to obtain them (MANUAL_DOWNLOAD_INSTRUCTIONS):\n{instructions.strip()}')


class DataFormatError(DataError):
  """A file has the wrong shape, dtype, labels or count; names file and finding."""


class PairListError(DataFormatError):
  """A pair-list line cannot be parsed; names file and 1-based line number."""

  def __init__(self, path: str, line_number: int, line: str, reason: str):
    self.path, self.line_number = path, line_number
    super().__init__(f'{path}:{line_number}: {reason}: {line.rstrip()!r}')


class OptionError(DataError):
  """A builder option has the wrong type or an impossible value; names it."""
