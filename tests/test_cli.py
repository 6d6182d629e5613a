"""Every entry point answers --help with its usage and exit status 0."""
import os
import subprocess
import sys

from absl import flags
import pytest

from conftest import REPO

PROGRAMS = ['launch.main', 'launch.match', 'launch.evaluate', 'launch.inspect_data',
            'launch.bench', 'launch.bench_pipeline', 'launch.convert', 'launch.summary',
            'launch.export', 'launch.accelerator_check']


@pytest.mark.parametrize('program', PROGRAMS)
def test_help_exits_zero_with_usage(program):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-m', program, '--help'], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert '--' in done.stdout and 'Traceback' not in done.stderr
  assert 'python -m' in done.stdout  # the module docstring's usage lines


def test_helpfull_exits_zero():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-m', 'launch.summary', '--helpfull'],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
  assert done.returncode == 0 and '--verbosity' in done.stdout


def _inspect_data_flags(argv=()):
  from launch import inspect_data  # pylint: disable=import-outside-toplevel
  flag_values = flags.FlagValues()
  inspect_data.define_flags(flag_values)
  flag_values(['inspect_data', *argv])
  return flag_values


def test_inspect_data_flags_all_have_help():
  flag_values = _inspect_data_flags(['--dataset=synthetic'])
  missing = [name for name, flag in flag_values._flags().items() if not flag.help]  # pylint: disable=protected-access
  assert len(flag_values) == 7 and not missing


def test_show_config_lists_every_field_without_workdir():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-m', 'launch.main', '--config=configs/test.py',
                         '--config.batch_size=6', '--show_config'], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stdout.splitlines()
  assert '--config.batch_size=6' in lines and "--config.dataset.name='toy'" in lines
  assert all(line.startswith('--config.') for line in lines)


@pytest.mark.parametrize('option, message', [
    ('num_train=-5', 'rrl_synthetic: bad builder option num_train=-5: must be >= 0'),
    ('num_trian=5', "synthetic: unknown builder option(s) ['num_trian']"),
    ('num_train', "--option 'num_train': expected KEY=VALUE"),
])
def test_inspect_data_errors_are_one_line(tmp_path, capsys, option, message):
  from launch import inspect_data  # pylint: disable=import-outside-toplevel
  flag_values = _inspect_data_flags(['--dataset=synthetic', f'--data_dir={tmp_path}',
                                     '--option', option, f'--out={tmp_path}/grid.png'])
  with pytest.raises(SystemExit) as exit_:
    inspect_data.main(['inspect_data'], flag_values)
  assert str(exit_.value).startswith(f'launch.inspect_data: error: {message}')
  assert '\n' not in str(exit_.value)
  assert not os.listdir(tmp_path)  # nothing built


@pytest.mark.parametrize('text, spec_arg, message', [
    (None, '', 'no such file {path}.'),
    ('import os\nraise RuntimeError("boom")\n', '', '{path}:2 raised RuntimeError: boom'),
    ('def get_config(:\n', '', '{path}:1 raised SyntaxError: '),
    ('X = 1\n', '', '{path} defines no get_config().'),
    ('def get_config(arg):\n  return {"a": 1}[arg]\n', ':b', "{path}:2 raised KeyError: 'b'"),
])
def test_bad_config_file_is_one_line(tmp_path, text, spec_arg, message):
  from rrl_jax import cli  # pylint: disable=import-outside-toplevel
  path = tmp_path / 'cfg.py'
  if text is not None:
    path.write_text(text)
  with pytest.raises(ValueError) as e:
    cli.load_config_file(f'{path}{spec_arg}')
  assert str(e.value).startswith(f'--config={path}{spec_arg}: '
                                 + message.format(path=path))
  assert '\n' not in str(e.value)


def test_config_file_errors_at_flag_parsing_are_one_line(tmp_path):
  """launch.main (ml_collections' config flag): a missing or raising file."""
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  (tmp_path / 'bad.py').write_text('raise ImportError("no module named nope")\n')
  for path, message in ((tmp_path / 'nope.py', f'no such file {tmp_path}/nope.py.'),
                        (tmp_path / 'bad.py', f'{tmp_path}/bad.py:1 raised ImportError')):
    done = subprocess.run([sys.executable, '-m', 'launch.main', f'--config={path}',
                           f'--workdir={tmp_path}/w'], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f'ERROR: --config={path}: {message}'
                                                + ('' if 'nope.py' in message else
                                                   ': no module named nope')]
  assert not os.path.exists(tmp_path / 'w')
