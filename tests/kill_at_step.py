"""launch.main with a signal right after step --kill_after_step (test_resume).

Test-only fault injection: the production loop has none. The train step that
`rrl_jax.training.train` builds is wrapped to send --signal (default SIGKILL)
to the process when it is asked for step kill_after_step + 1, i.e. once step
kill_after_step (with its evaluation and checkpoint, if due) is complete. A
SIGTERM/SIGINT arrives as a cluster's preemption does: during a step.

  python -m tests.kill_at_step --kill_after_step=5 --workdir=... --config=...
  python -m tests.kill_at_step --kill_after_step=5 --signal=SIGTERM ...
"""
import os
import signal

from absl import app
from absl import flags

from launch import main as launch_main
from rrl_jax.training import train

_KILL_AFTER = flags.DEFINE_integer('kill_after_step', None,
                                   'SIGKILL this process after this step.',
                                   required=True)
_SIGNAL = flags.DEFINE_string('signal', 'SIGKILL', 'Signal name to send.')


def kill_after(make_train_step):
  """Wraps rrl_jax's step builder: the returned step signals at step N + 1."""
  def make(*args, **kwargs):
    step_fn = make_train_step(*args, **kwargs)
    done = [0]

    def step(*step_args):
      if done[0] == _KILL_AFTER.value:
        os.kill(os.getpid(), getattr(signal, _SIGNAL.value))
      done[0] += 1
      return step_fn(*step_args)
    return step
  return make


if __name__ == '__main__':
  train.make_train_step = kill_after(train.make_train_step)
  app.run(launch_main.main, flags_parser=launch_main._parse_flags)  # pylint: disable=protected-access
