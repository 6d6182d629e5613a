"""Tiny config for tests and smoke runs (seconds): default.py:test.

Takes a model like every config: --config=configs/test.py:fil_net.
"""
from configs import default


def get_config(arg: str = ''):
  return default.get_config(','.join(filter(None, [arg, 'test'])))
