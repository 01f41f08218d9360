"""Imports point one way: the packages form layers, each importing only those below.

    pipeline.cli       the `mnist-tfx` command line: may import everything
    kubeflow           compiles the pipeline for Kubeflow, TF Serving's manifests
    pipeline.reports   what a run did, for people (and what the server logged)
    pipeline           config, factory, runner, data, ML Metadata, the client
    components         the custom TFX components (one starts the model server)
    serving            `python -m serving`: the entry point on top of
      serving.model_servers  the server: flags, gRPC, REST, the process helper
      serving.servables      a loaded SavedModel version and its APIs
      serving.core           version management: sources, policies, registry
    models             the feature and serving contracts, the TFX module files

The graph is read from the source with `ast` (every import statement, also those
inside functions), so a new import that closes a cycle fails here before anyone
runs into it. The tests keep their own direction too: a test imports the code and
tests/testutil/, never another test module or conftest.py, and the benchmarks do
not import the tests.
"""

import ast
import os
from typing import Dict, Iterator, List, Set, Tuple

from pipeline import config as config_lib

REPO = config_lib.REPO_ROOT
# Lowest first; a package may import only the packages before it.
LAYERS = ['models', 'serving.core', 'serving.servables', 'serving.model_servers',
          'serving', 'components', 'pipeline', 'pipeline.reports', 'kubeflow',
          'pipeline.cli']
# The sub-packages that are layers of their own.
SUBPACKAGES = ('pipeline.cli', 'pipeline.reports', 'serving.core',
               'serving.servables', 'serving.model_servers')
SERVING_LAYERS = [layer for layer in LAYERS if layer.split('.')[0] == 'serving']
# What a model server has no use for: drawing. The plots of what it logged are
# pipeline/reports/'s.
PLOTTING_LIBRARIES = ('matplotlib', 'seaborn', 'plotly', 'bokeh', 'PIL')
TOP_LEVEL = {name.split('.')[0] for name in LAYERS}


def _python_files(folder: str) -> Iterator[str]:
  for root, dirs, files in os.walk(os.path.join(REPO, folder)):
    dirs[:] = sorted(d for d in dirs if d != '__pycache__')
    for name in sorted(files):
      if name.endswith('.py'):
        yield os.path.join(root, name)


def _module_name(path: str) -> str:
  relative = os.path.relpath(path, REPO)[:-len('.py')].split(os.sep)
  if relative[-1] == '__init__':
    relative = relative[:-1]
  return '.'.join(relative)


def _is_module(name: str) -> bool:
  path = os.path.join(REPO, *name.split('.'))
  return os.path.isdir(path) or os.path.isfile(path + '.py')


def imported_modules(path: str) -> Iterator[Tuple[int, str]]:
  """(line, module) of every import in the file at `path`: `from a import b`
  counts as a.b when that is a module of the repo, else as a."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  package = _module_name(path)
  if not path.endswith('__init__.py'):
    package = package.rpartition('.')[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # relative: from the importing module's package
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      for alias in node.names:
        candidate = f'{base}.{alias.name}' if base else alias.name
        yield node.lineno, candidate if _is_module(candidate) else base


def layer_of(module: str) -> str:
  """The layer a module of the repo belongs to, or '' for any other module."""
  if module.split('.')[0] not in TOP_LEVEL:
    return ''
  for sub in SUBPACKAGES:
    if module == sub or module.startswith(sub + '.'):
      return sub
  return module.split('.')[0]


def package_graph() -> Dict[str, Dict[str, List[str]]]:
  """{layer: {imported layer: ['file:line', ...]}} over the project's packages."""
  graph: Dict[str, Dict[str, List[str]]] = {layer: {} for layer in LAYERS}
  for top in sorted(TOP_LEVEL):
    for path in _python_files(top):
      source = layer_of(_module_name(path))
      for line, module in imported_modules(path):
        target = layer_of(module)
        if target and target != source:
          where = f'{os.path.relpath(path, REPO)}:{line}'
          graph[source].setdefault(target, []).append(where)
  return graph


def find_cycle(graph: Dict[str, Dict[str, List[str]]]) -> List[str]:
  """One cycle of the graph as [a, b, ..., a], or [] if it has none."""
  state: Dict[str, int] = {}  # 1: on the current path, 2: done
  path: List[str] = []

  def visit(node: str) -> List[str]:
    state[node] = 1
    path.append(node)
    for target in sorted(graph.get(node, {})):
      if state.get(target) == 1:
        return path[path.index(target):] + [target]
      if not state.get(target):
        found = visit(target)
        if found:
          return found
    path.pop()
    state[node] = 2
    return []

  for node in sorted(graph):
    if not state.get(node):
      found = visit(node)
      if found:
        return found
  return []


def test_find_cycle_finds_one():
  """The checker itself, on a graph that has a cycle and one that has none."""
  cyclic = {'a': {'b': []}, 'b': {'c': []}, 'c': {'a': []}}
  assert find_cycle(cyclic) == ['a', 'b', 'c', 'a']
  assert find_cycle({'a': {'b': []}, 'b': {}, 'c': {'a': []}}) == []


def test_the_packages_import_each_other_without_a_cycle():
  graph = package_graph()
  cycle = find_cycle(graph)
  assert not cycle, ' -> '.join(cycle) + ': ' + '; '.join(
      f'{a} imports {b} at {", ".join(graph[a][b])}'
      for a, b in zip(cycle, cycle[1:]))


def test_each_package_imports_only_the_layers_below_it():
  wrong = [f'{layer} imports {target} (at {", ".join(where)}), which is not '
           'below it'
           for layer, targets in package_graph().items()
           for target, where in sorted(targets.items())
           if LAYERS.index(target) > LAYERS.index(layer)]
  assert not wrong, wrong


def test_models_import_no_other_package():
  """The contracts and module files are read by everyone and read no one: TFX
  loads the module files on their own, and a client needs no pipeline."""
  assert package_graph()['models'] == {}


def test_serving_imports_only_models_and_its_own_lower_layers():
  """The server needs no pipeline: it runs anywhere a SavedModel is."""
  graph = package_graph()
  for layer in SERVING_LAYERS:
    below = SERVING_LAYERS[:SERVING_LAYERS.index(layer)]
    assert set(graph[layer]) <= {'models', *below}, (layer, graph[layer])


def test_serving_imports_no_plotting_library():
  found = [f'{os.path.relpath(path, REPO)}:{line} imports {module}'
           for path in _python_files('serving')
           for line, module in imported_modules(path)
           if module.split('.')[0] in PLOTTING_LIBRARIES]
  assert not found, found


def _test_imports(folder: str) -> Iterator[Tuple[str, int, str]]:
  for path in _python_files(folder):
    for line, module in imported_modules(path):
      if module == 'tests' or module.startswith('tests.'):
        yield os.path.relpath(path, REPO), line, module


def test_tests_import_only_the_test_utilities():
  wrong = [f'{path}:{line} imports {module}'
           for path, line, module in _test_imports('tests')
           if not (module == 'tests.testutil' or
                   module.startswith('tests.testutil.'))]
  assert not wrong, wrong


def test_benchmarks_do_not_import_the_tests():
  found: Set[str] = {f'{path}:{line} imports {module}'
                     for path, line, module in _test_imports('bench')}
  assert not found, sorted(found)
