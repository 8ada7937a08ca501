"""What the job's code imports is installed by its runtime requirements: requirements.txt (the README's first
command, the templates) and setup.py (what `pip install .` and --setup_file give), not only by the dev tools'
requirements-dev.txt. A module imported by pipeline/ or transforms/ must come from a distribution those files name,
or from one that a named distribution depends on (its installed metadata says which)."""
import ast
import functools
import importlib.metadata as metadata
import importlib.util
import pathlib
import sys
from typing import Dict, Iterable, Sequence, Set

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import datagen

CODE = ('pipeline', 'transforms')


def imported_modules() -> Set[str]:
  """Dotted names the job's code imports (inside functions too), other than the standard library and its own."""
  names = set()
  for package in CODE:
    for path in (datagen.ROOT / package).rglob('*.py'):
      for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
          names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
          names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return {name for name in names if name.split('.')[0] not in set(sys.stdlib_module_names) | set(CODE)}


@functools.lru_cache(maxsize=None)
def _files(dist: str) -> Set[pathlib.Path]:
  found = metadata.distribution(dist)
  return {pathlib.Path(found.locate_file(f)).resolve() for f in found.files or []}


def _owner(name: str, candidates: Sequence[str]) -> str:
  """The distribution that provides module `name`: the one its top-level package names, or, for namespace
  packages that many share (google.*), the one whose files hold `name` or its deepest importable parent."""
  if len(set(candidates)) == 1:
    return canonicalize_name(candidates[0])
  parts = name.split('.')
  while parts:
    try:
      spec = importlib.util.find_spec('.'.join(parts))
    except ModuleNotFoundError:  # a class or function: `from module import Name`
      spec = None
    if spec is not None and spec.origin not in (None, 'namespace'):
      origin = pathlib.Path(spec.origin).resolve()
      for dist in candidates:
        if origin in _files(dist):
          return canonicalize_name(dist)
    parts.pop()
  raise AssertionError(f'{name}: imported by the job, but no installed distribution provides it')


def _closure(requirements: Iterable[Requirement]) -> Set[str]:
  """The named distributions and everything they depend on, with the extras asked for."""
  seen: Set[str] = set()
  todo = [(canonicalize_name(r.name), set(r.extras)) for r in requirements]
  while todo:
    name, extras = todo.pop()
    if (name, frozenset(extras)) in seen:
      continue
    seen.add((name, frozenset(extras)))
    for line in metadata.distribution(name).requires or []:
      dep = Requirement(line)
      if dep.marker is None or any(dep.marker.evaluate({'extra': e}) for e in extras | {''}):
        todo.append((canonicalize_name(dep.name), set(dep.extras)))
  return {name for name, _ in seen}


def _requirements_txt() -> Set[Requirement]:
  lines = (line.split('#', 1)[0].strip() for line in (datagen.ROOT / 'requirements.txt').read_text().splitlines())
  return {Requirement(line) for line in lines if line and not line.startswith('-')}


def _setup_py() -> Set[Requirement]:
  tree = ast.parse((datagen.ROOT / 'setup.py').read_text())
  call = next(node for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == 'install_requires')
  return {Requirement(value) for value in ast.literal_eval(call.value)}


def _missing(requirements: Set[Requirement]) -> Dict[str, str]:
  installed = _closure(requirements)
  owners = metadata.packages_distributions()
  found = {name: _owner(name, owners.get(name.split('.')[0], [])) for name in imported_modules()}
  return {name: dist for name, dist in sorted(found.items()) if dist not in installed}


def test_requirements_txt_installs_what_the_job_imports():
  assert not _missing(_requirements_txt()), 'imported by pipeline/ or transforms/, not installed by requirements.txt'


def test_setup_py_installs_what_the_job_imports():
  assert not _missing(_setup_py()), 'imported by pipeline/ or transforms/, not in setup.py install_requires'


def test_the_check_sees_a_dev_only_requirement():
  """psutil is pinned in requirements-dev.txt; without it in requirements.txt the estimate failed on a user's
  install (ModuleNotFoundError). Dropped from the runtime requirements, the check must name it."""
  without = {r for r in _requirements_txt() if canonicalize_name(r.name) != 'psutil'}
  assert 'psutil' in _missing(without).values()
