"""rrl_jax/xla_cpu.py: the convolution-runtime flags and the huge-page malloc restart."""
import os
import subprocess
import sys
import textwrap

import pytest

from rrl_jax import xla_cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNABLE = 'glibc.malloc.hugetlb'


def _env_without_tunable():
  return xla_cpu.huge_page_malloc_environ(os.environ, None)


def _restart_would_help():
  return xla_cpu.huge_page_malloc_blocker(_env_without_tunable()) is None


needs_huge_pages = pytest.mark.skipif(
    not _restart_would_help(),
    reason=f'no huge-page malloc here: {xla_cpu.huge_page_malloc_blocker(_env_without_tunable())}')


def test_conv_flags_and_compile_options():
  assert xla_cpu.cpu_conv_flags('eigen') == [
      '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution']
  assert xla_cpu.cpu_conv_flags('ynn') == []
  with pytest.raises(ValueError, match='convs must be one of'):
    xla_cpu.cpu_conv_flags('onednn')


@pytest.fixture
def linux_glibc(monkeypatch, tmp_path):
  """A Linux glibc 2.36 host whose THP mode file the test writes."""
  monkeypatch.setattr(sys, 'platform', 'linux')
  monkeypatch.setattr(xla_cpu.platform, 'libc_ver', lambda: ('glibc', '2.36'))
  mode = tmp_path / 'enabled'
  mode.write_text('always [madvise] never\n')
  return str(mode)


def test_blocker_is_none_only_where_the_restart_helps(linux_glibc, monkeypatch):
  blocker = xla_cpu.huge_page_malloc_blocker
  assert blocker({}, linux_glibc) is None
  assert 'already set' in blocker({'GLIBC_TUNABLES': f'{TUNABLE}=0'}, linux_glibc)
  assert blocker({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'}, linux_glibc) is None
  with open(linux_glibc, 'w') as f:
    f.write('always madvise [never]\n')
  assert 'off' in blocker({}, linux_glibc)
  assert 'unreadable' in blocker({}, linux_glibc + '.missing')
  monkeypatch.setattr(xla_cpu.platform, 'libc_ver', lambda: ('glibc', '2.31'))
  assert '2.35' in blocker({}, linux_glibc)
  monkeypatch.setattr(xla_cpu.platform, 'libc_ver', lambda: ('', ''))
  assert 'unknown libc' in blocker({}, linux_glibc)
  monkeypatch.setattr(sys, 'platform', 'darwin')
  assert 'not Linux' in blocker({}, linux_glibc)


def test_environ_sets_or_removes_the_tunable_and_keeps_the_others():
  environ = {'PATH': '/bin', 'GLIBC_TUNABLES': f'glibc.malloc.arena_max=2:{TUNABLE}=0'}
  assert xla_cpu.huge_page_malloc_environ(environ, '1') == {
      'PATH': '/bin', 'GLIBC_TUNABLES': f'glibc.malloc.arena_max=2:{TUNABLE}=1'}
  assert xla_cpu.huge_page_malloc_environ(environ, None) == {
      'PATH': '/bin', 'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'}
  assert xla_cpu.huge_page_malloc_environ({'PATH': '/bin'}, None) == {'PATH': '/bin'}
  assert environ['GLIBC_TUNABLES'].endswith('=0')  # a copy; the input is unchanged


def test_state_reads_the_tunable_the_process_started_with():
  state = xla_cpu.huge_page_malloc_state
  assert state({'GLIBC_TUNABLES': f'glibc.malloc.arena_max=2:{TUNABLE}=1'}) == 'on'
  assert state({'GLIBC_TUNABLES': f'{TUNABLE}=0'}) == f'off: {TUNABLE}=0'
  assert state({}).startswith('off: ')


def test_launch_detects_its_own_programs_only():
  import launch  # pylint: disable=g-import-not-at-top
  assert launch._main_module(['python', '-m', 'launch.main', '--workdir=w']) == 'launch.main'
  assert launch._main_module(['python', '-u', '-m', 'launch.bench']) == 'launch.bench'
  assert launch._main_module(['python', '-m', 'pytest', '-m', 'launch.x']) == 'pytest'
  assert launch._main_module(['python', '-c', 'pass']) == ''
  assert launch._main_module(['python', '-m']) == ''


@needs_huge_pages
def test_restart_happens_once_and_keeps_the_command_line():
  code = textwrap.dedent("""
      import os, sys
      from rrl_jax import xla_cpu
      print('start', os.environ.get('GLIBC_TUNABLES'), sys.argv[1:], flush=True)
      xla_cpu.restart_with_huge_page_malloc()
      print('state', xla_cpu.huge_page_malloc_state())
  """)
  out = subprocess.run([sys.executable, '-c', code, 'arg1', '--flag=2'], cwd=ROOT,
                       env=_env_without_tunable(), capture_output=True, text=True,
                       check=True).stdout.splitlines()
  assert out == ["start None ['arg1', '--flag=2']",
                 f"start {TUNABLE}=1 ['arg1', '--flag=2']",
                 'state on']


@needs_huge_pages
def test_python_m_launch_restarts_before_its_imports(tmp_path):
  # sitecustomize runs at every interpreter start, so it sees the restart.
  (tmp_path / 'sitecustomize.py').write_text(
      "import os, sys\n"
      "print('interpreter', os.environ.get('GLIBC_TUNABLES'), 'jax' in sys.modules)\n")
  env = _env_without_tunable()
  env['PYTHONPATH'] = os.pathsep.join([str(tmp_path), ROOT])
  out = subprocess.run([sys.executable, '-m', 'launch.summary', '--help'], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True).stdout.splitlines()
  starts = [line for line in out if line.startswith('interpreter')]
  assert starts == ['interpreter None False', f'interpreter {TUNABLE}=1 False']


@needs_huge_pages
def test_huge_page_malloc_stops_the_page_faults_of_large_buffers():
  # What XLA:CPU does with Eigen's packing buffers: malloc, write, free, again.
  code = textwrap.dedent("""
      import ctypes, resource
      libc = ctypes.CDLL(None)
      libc.malloc.restype = ctypes.c_void_p
      libc.free.argtypes = [ctypes.c_void_p]
      size = 128 << 20
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      for _ in range(4):
        p = libc.malloc(size)
        ctypes.memset(p, 1, size)
        libc.free(p)
      print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
  """)
  faults = {}
  for value in ('0', '1'):
    env = xla_cpu.huge_page_malloc_environ(os.environ, value)
    faults[value] = int(subprocess.run([sys.executable, '-c', code], env=env, check=True,
                                       capture_output=True, text=True).stdout)
  assert faults['0'] >= 4 * (128 << 20) // 4096 * 0.9, faults  # every 4 KiB page, every time
  assert faults['1'] * 20 < faults['0'], faults
