"""Tiny config for tests and smoke runs (seconds): default.py:test."""
from configs import default


def get_config(arg: str = ''):
  del arg
  return default.get_config('test')
