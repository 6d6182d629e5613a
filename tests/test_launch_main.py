"""launch.main: bad flags, configs and workdirs end in one `ERROR: ...` line."""
import os

import pytest

from tests.train_helpers import config_flags_for, run_python


def _fails_in_one_line(args, workdir, env=None):
  r = run_python(['-m', 'launch.main', f'--workdir={workdir}'] + args, env=env,
                 timeout=300)
  assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
  assert 'Traceback' not in r.stderr, r.stderr[-3000:]
  lines = [l for l in r.stderr.splitlines() if l.strip()]
  assert lines and lines[-1].startswith('ERROR: '), r.stderr[-3000:]
  return lines[-1]


@pytest.mark.parametrize('override,expect', [
    ('--config.nonexistent=1', "ERROR: --config.nonexistent: unknown key "
     "'nonexistent' in config (from "),
    ('--config.optimizer.nme=1', 'valid keys of config.optimizer: beta_1, beta_2,'),
    ('--config.batch_size=-3', 'ERROR: invalid config: config.batch_size=-3 must '
     'be an integer > 0.'),
    ('--config.dataset.name=nope', "ERROR: invalid config: config.dataset.name="
     "'nope' is unknown; valid: os, os_raw,"),
])
def test_bad_override_is_one_line_and_writes_nothing(override, expect, tmp_path):
  workdir = str(tmp_path / 'run')
  line = _fails_in_one_line(config_flags_for() + [override], workdir)
  assert line.startswith(expect) or expect in line, line
  if 'valid keys' in expect:
    assert 'name' in line and 'learning_rate' in line
  assert not os.path.exists(workdir)


def test_batch_not_divisible_by_two_devices(tmp_path):
  workdir = str(tmp_path / 'run')
  line = _fails_in_one_line(
      config_flags_for(batch_size=7), workdir,
      env={'XLA_FLAGS': '--xla_force_host_platform_device_count=2'})
  assert line == ('ERROR: invalid config: config.batch_size=7 is not divisible by '
                  'the 2 devices; use a multiple of 2.')
  assert not os.path.exists(workdir)


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('')
  workdir = str(tmp_path / 'file' / 'run')
  line = _fails_in_one_line(config_flags_for(), workdir)
  assert line.startswith(f'ERROR: cannot write to --workdir {workdir} (')
