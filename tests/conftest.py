"""Shared test fixtures: compiled models and converted weights are built once per session."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(REPO, '..', 'shared'))
KERAS_FIXTURES = os.path.join(SHARED, 'fixtures', 'keras_rrl')
SHARED_DATA = os.path.join(SHARED, 'data')


def require_path(path: str):
  """Skips the calling test with a clear reason when `path` is absent."""
  if not os.path.exists(path):
    pytest.skip(f'{path} is absent: this test needs ../shared beside the repository.')
  return path
