"""The package layering of docs/architecture.md, read from the source (AST, no imports).

The library never imports the programs (launch/); no module is an alias of
another (sys.modules[__name__] = ...); inference, models and data never import
training.
"""
import ast
import os

import pytest

from conftest import REPO

# Packages that must import nothing from the listed ones.
LOWER_LAYERS = {
    'rrl_jax': ('launch',),
    'rrl_jax/evaluation': ('rrl_jax.training',),
    'rrl_jax/models': ('rrl_jax.training', 'rrl_jax.evaluation', 'rrl_jax.data'),
    'rrl_jax/data': ('rrl_jax.training', 'rrl_jax.evaluation', 'rrl_jax.models'),
    'rrl_jax/checkpoint_format.py': ('rrl_jax.training', 'rrl_jax.evaluation',
                                     'rrl_jax.models', 'rrl_jax.data'),
}


def _python_files(path):
  path = os.path.join(REPO, path)
  if path.endswith('.py'):
    return [path] if os.path.isfile(path) else []
  return sorted(os.path.join(base, name) for base, _, names in os.walk(path)
                for name in names if name.endswith('.py'))


def imported_modules(tree: ast.AST):
  """Every module an import statement names (`from a import b` gives a and a.b)."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      yield node.lineno, node.module
      for alias in node.names:
        yield node.lineno, f'{node.module}.{alias.name}'


def forbidden_imports(path, forbidden):
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  hits = {}  # One per line: `from a import b` names a and a.b.
  for line, name in imported_modules(tree):
    if any(name == f or name.startswith(f + '.') for f in forbidden):
      hits.setdefault(line, f'{os.path.relpath(path, REPO)}:{line}: imports {name}')
  return [hits[line] for line in sorted(hits)]


def assigns_sys_modules(path):
  """Lines of `sys.modules[...] = ...` (what an alias module does)."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  return [f'{os.path.relpath(path, REPO)}:{node.lineno}' for node in ast.walk(tree)
          if isinstance(node, ast.Assign) and any(
              isinstance(t, ast.Subscript) and ast.unparse(t.value) == 'sys.modules'
              for t in node.targets)]


@pytest.mark.parametrize('package', sorted(LOWER_LAYERS))
def test_lower_layers_import_nothing_above_them(package):
  files = _python_files(package)
  assert files, f'{package}: no Python files (moved? update LOWER_LAYERS)'
  found = [hit for f in files for hit in forbidden_imports(f, LOWER_LAYERS[package])]
  assert not found, '\n'.join(found)


def test_no_alias_modules():
  found = [hit for top in ('rrl_jax', 'launch') for f in _python_files(top)
           for hit in assigns_sys_modules(f)]
  assert not found, '\n'.join(found)


def test_the_scan_sees_what_it_forbids(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('import sys\nfrom rrl_jax.training import checkpoints\n'
                 'def f():\n  from launch import summary\n'
                 'sys.modules[__name__] = summary\n')
  assert len(forbidden_imports(str(bad), ('rrl_jax.training',))) == 1
  assert forbidden_imports(str(bad), ('launch',)) == [
      f'{os.path.relpath(bad, REPO)}:4: imports launch']
  assert len(assigns_sys_modules(str(bad))) == 1
