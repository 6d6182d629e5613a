"""Small helpers shared by the command-line programs (launch/*.py, convert).

- `define_help_flags()`: absl's --help/--helpshort/--helpfull print the usage and
  exit 1; these replacements print the same and exit 0, like argparse programs.
- `define_int_list()`: a comma-separated list flag whose items are integers.
- `define_checkpoint_flags()` / `checkpoint_dir()`: --checkpoint (a checkpoint
  or a training workdir) and --step, as launch.evaluate/match/export take them.
- `load_config_file()` / `parse_flags()`: a --config file that does not exist,
  or raises at import or in get_config(), is one error line naming it (never
  ml_collections' traceback).
Log silencing is rrl_jax/logs.py.
"""
import importlib.util
import os
import sys
import traceback

from absl import app
from absl import flags

FLAGS = flags.FLAGS


class _HelpFlag(app.HelpFlag):
  """--help / -?: usage on stdout, exit 0."""

  def parse(self, arg):
    if self._parse(arg):
      app.usage(shorthelp=True, writeto_stdout=True)
      print('\nTry --helpfull to get a list of all flags.')
      sys.exit(0)


class _HelpshortFlag(_HelpFlag):
  NAME = 'helpshort'
  SHORT_NAME = None


class _HelpfullFlag(app.HelpfullFlag):

  def parse(self, arg):
    if self._parse(arg):
      app.usage(writeto_stdout=True)
      sys.exit(0)


def define_help_flags() -> None:
  """Registers absl's help flags with exit status 0 for a help request. Idempotent."""
  app.define_help_flags()
  for name, cls in (('help', _HelpFlag), ('helpshort', _HelpshortFlag),
                    ('helpfull', _HelpfullFlag)):
    old = FLAGS[name]
    if not isinstance(old, cls):
      for key in (name, old.short_name):
        if key and key in FLAGS:
          delattr(FLAGS, key)
      flags.DEFINE_flag(cls())


class _IntListParser(flags.ListParser):
  """'64,128' -> [64, 128]; a non-integer item is a flag error naming it."""

  def parse(self, argument):
    items = super().parse(argument)
    try:
      return [int(x) for x in items]
    except ValueError:
      raise ValueError(f'expected comma-separated integers, got {argument!r}') from None

  def flag_type(self):
    return 'comma separated list of integers'


def define_int_list(name, default, help_text, flag_values=FLAGS) -> None:
  """DEFINE_list whose items are ints (e.g. --batch_sizes=64,128)."""
  flags.DEFINE(_IntListParser(), name, default, help_text, flag_values,
               flags.CsvListSerializer(','))


def define_checkpoint_flags() -> None:
  """--checkpoint and --step of the programs that load a trained model."""
  flags.DEFINE_string('checkpoint', None, 'rrl_jax checkpoint directory, or a '
                      'training workdir (its best/ is used).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')


def checkpoint_dir(path: str) -> str:
  """--checkpoint as a checkpoint directory (a workdir's best/), saying which.

  Raises CheckpointError (rrl_jax.training.checkpoints) when there is none.
  """
  from rrl_jax import checkpoint_format  # pylint: disable=g-import-not-at-top
  directory, note = checkpoint_format.resolve_workdir(path)
  if note:
    print(note)
  return directory


def config_lines(config, prefix: str = 'config.'):
  """'--config.FIELD=VALUE' lines for every leaf of a ConfigDict (for --show_config)."""
  lines = []
  for key in sorted(config.keys()):
    value = config[key]
    if hasattr(value, 'keys') and hasattr(value, 'items'):
      lines += config_lines(value, f'{prefix}{key}.')
    else:
      lines.append(f'--{prefix}{key}={value!r}')
  return lines


def load_config_file(spec: str):
  """`path.py[:arg]` -> its get_config(arg) (get_config() without an arg).

  ValueError with one line naming the file (and the line that raised) when it
  does not exist, fails to import, has no get_config or get_config raises.
  """
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise ValueError(f'--config={spec}: no such file {path}.')
  try:
    module_spec = importlib.util.spec_from_file_location('rrl_jax_config', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, 'get_config'):
      raise ValueError(f'--config={spec}: {path} defines no get_config().')
    return module.get_config(arg) if arg else module.get_config()
  except ValueError as e:
    if str(e).startswith(f'--config={spec}:'):
      raise
    raise ValueError(_raised(spec, path, e)) from None
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(_raised(spec, path, e)) from None


def _raised(spec: str, path: str, error: BaseException) -> str:
  """'--config=SPEC: PATH:LINE raised TypeError: ...' (the config file's last line)."""
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if os.path.abspath(f.filename) == os.path.abspath(path)]
  where = f'{path}:{frames[-1].lineno}' if frames else path
  if isinstance(error, SyntaxError) and error.lineno:
    where = f'{path}:{error.lineno}'
  text = ' '.join(str(error).split())[:300]
  return f'--config={spec}: {where} raised {type(error).__name__}: {text}'


def _flag_value(argv, name: str):
  """The last --NAME=VALUE / --NAME VALUE of argv, else None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      value = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def parse_flags(argv):
  """absl's flag parsing (app.run's flags_parser) for programs whose --config is
  an ml_collections config file: one error line for a bad config file."""
  spec = _flag_value(argv, 'config')
  if spec:
    try:
      load_config_file(spec)
    except ValueError as e:
      sys.stderr.write(f'ERROR: {e}\n')
      sys.exit(1)
  return app.parse_flags_with_usage(argv)
