"""Log silencing (rrl_jax/logs.py): the abandoned-restore noise filter."""
import asyncio
import sys

import tensorstore as ts

from rrl_jax import logs


def _complete_on_closed_loop():
  """A TensorStore read completing after its asyncio loop closed (as when an
  Orbax restore fails with reads in flight): 'Event loop is closed'."""
  promise, future = ts.Promise.new()
  loop = asyncio.new_event_loop()
  loop.set_exception_handler(lambda *_: None)  # 'Task was destroyed': expected.

  async def wait():
    return await future

  loop.create_task(wait())
  loop.run_until_complete(asyncio.sleep(0.05))
  loop.close()
  promise.set_result(1)


def test_closed_loop_noise_is_dropped_other_unraisables_kept(capfd, monkeypatch):
  seen = []
  monkeypatch.setattr(sys, 'unraisablehook', seen.append)
  _complete_on_closed_loop()
  assert [str(a.exc_value) for a in seen] == ['Event loop is closed']  # The noise.
  seen.clear()
  logs.drop_abandoned_restore_noise()
  _complete_on_closed_loop()
  assert seen == []
  # Anything else still reaches the previous hook.
  sys.unraisablehook(type('A', (), {'object': None, 'exc_value': KeyError('x')})())
  assert len(seen) == 1
