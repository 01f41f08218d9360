"""Packaging: pyproject.toml installs the project and its `mnist-tfx` command.

Two checks, neither needing the network (pip runs with --no-index):

* A wheel built from the project (`pip wheel --no-deps --no-build-isolation`, with the
  environment's pinned setuptools) holds every module of the five packages, the TFX
  module files (models/transform, models/trainer), the schema and the manifests, and
  nothing else (no tests/, bench/, tools/); its metadata carries the version of
  pipeline/__init__.py, requirements.in as Requires-Dist and requirements-test.in
  under the `test` extra only.

* The documented install, `pip install -e '<repo>[test]' -c <repo>/requirements.lock`,
  into a throw-away virtualenv, then its `mnist-tfx --version` and `--help`.
  What is real: the virtualenv (made by the base interpreter of the environment,
  /usr/bin/python3 in the Debian 13 chroot, with its own pip from ensurepip); pip's
  resolution of `mnist-tfx[test]` against requirements.in, requirements-test.in and
  every pin of requirements.lock; the build of the project (PEP 660 editable wheel)
  by the backend pyproject.toml names, in pip's isolated build environment (setuptools
  from the distribution's wheel directory, /usr/share/python-wheels, when it has one;
  otherwise the environment's setuptools with --no-build-isolation
  --check-build-dependencies); the console script pip writes; and the command run from
  outside the repository with PYTHONPATH unset, so `pipeline` is imported through the
  install. What is shared: the third-party packages. Installing TFX and TensorFlow
  into a fresh virtualenv downloads and unpacks gigabytes, so a .pth file in
  the new virtualenv adds the environment's site-packages (left alone: pip does not
  uninstall outside the virtualenv it runs in, and without an index it has nothing
  to install but the project) and pip finds every requirement already installed at
  the locked version; the test asserts that it installs the project alone. A
  requirement or pin the environment does not satisfy fails the install (there is
  no index to fetch it from). A full install of the same command from PyPI, measured
  once: 85 s with an empty pip cache, 3.4 GB installed.

The project is copied (without data/ and build output) into the test's temporary
directory first, so builds never write into the checkout.
"""

import email.parser
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

import pipeline
from pipeline import config as config_lib

# Builds or drives the packaging and set-up scripts, not the product.
pytestmark = pytest.mark.packaging

REPO = config_lib.REPO_ROOT
PACKAGES = ('pipeline', 'components', 'models', 'serving', 'kubeflow')
# Files the pipeline reads by path from an installed project (pipeline/config.py,
# kubeflow/manifests.py): they must be in the wheel, not only importable modules.
DATA_FILES = (
    'models/transform/mnist_transform.py',
    'models/trainer/mnist_trainer.py',
    'models/trainer/model.py',
    'pipeline/schema/schema.pbtxt',
    'kubeflow/serving.yaml',
    'serving/batching_parameters.txt',
)
# Top-level entries of the checkout that are not part of the project's source.
_NOT_SOURCE = {'.git', 'data', 'outputs', 'build', 'dist', '.benchmarks',
               '.pytest_cache', '.ci'}
# The Debian package python3-setuptools-whl, a dependency of python3-venv.
DISTRIBUTION_WHEELS = '/usr/share/python-wheels'


def _ignore(directory, names):
  ignored = {n for n in names
             if n == '__pycache__' or n.endswith('.egg-info') or n.endswith('.pyc')}
  if os.path.samefile(directory, REPO):
    ignored |= _NOT_SOURCE & set(names)
  return ignored


@pytest.fixture(scope='module')
def project(tmp_path_factory) -> str:
  """A copy of the checkout's source, for builds to write into."""
  path = str(tmp_path_factory.mktemp('project') / 'mnist-tfx')
  shutil.copytree(REPO, path, ignore=_ignore, symlinks=True)
  return path


def _run(args, env=None, cwd=None, timeout=300):
  result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
  assert result.returncode == 0, (
      f'{" ".join(args)} failed ({result.returncode}):\n'
      f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
  return result


def _normalized(requirement: str) -> str:
  """`Name[extra]==1.0` as a comparable string: no spaces, PEP 503 name."""
  requirement = requirement.replace(' ', '')
  name = re.match(r'[A-Za-z0-9._-]+', requirement).group(0)
  return re.sub(r'[-_.]+', '-', name).lower() + requirement[len(name):]


def _requirements(name):
  """The requirement lines of a requirements file, comments and blanks dropped."""
  with open(os.path.join(REPO, name)) as f:
    lines = (line.split('#', 1)[0].strip() for line in f)
    return sorted(_normalized(line) for line in lines if line)


# --- The wheel. -------------------------------------------------------------------


@pytest.fixture(scope='module')
def wheel(project, tmp_path_factory) -> zipfile.ZipFile:
  out = str(tmp_path_factory.mktemp('wheel'))
  _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
        '--no-index', '--wheel-dir', out, project], cwd=out)
  wheels = glob.glob(os.path.join(out, '*.whl'))
  assert [os.path.basename(w) for w in wheels] == [
      f'mnist_tfx-{pipeline.__version__}-py3-none-any.whl']
  with zipfile.ZipFile(wheels[0]) as z:
    yield z


def test_wheel_holds_the_packages_module_files_schema_and_manifests(wheel, project):
  names = set(wheel.namelist())
  dist_info = f'mnist_tfx-{pipeline.__version__}.dist-info'
  assert {n.split('/')[0] for n in names} == set(PACKAGES) | {dist_info}
  assert set(DATA_FILES) <= names
  # Every module of the source tree, the namespace folders of module files included.
  for package in PACKAGES:
    for path in glob.glob(os.path.join(project, package, '**', '*.py'), recursive=True):
      assert os.path.relpath(path, project) in names
  entry_points = wheel.read(f'{dist_info}/entry_points.txt').decode()
  assert re.search(r'^mnist-tfx = pipeline\.cli\.main:main$', entry_points, re.M), entry_points


def test_wheel_metadata_has_the_version_and_requirements_files(wheel):
  dist_info = f'mnist_tfx-{pipeline.__version__}.dist-info'
  metadata = email.parser.Parser().parsestr(
      wheel.read(f'{dist_info}/METADATA').decode())
  assert metadata['Name'] == 'mnist-tfx'
  assert metadata['Version'] == pipeline.__version__
  assert metadata.get_all('Provides-Extra') == ['test']
  runtime, test_extra, other = [], [], []
  for line in metadata.get_all('Requires-Dist'):
    requirement, _, marker = (part.strip() for part in line.partition(';'))
    {'': runtime, 'extra == "test"': test_extra}.get(marker, other).append(
        _normalized(requirement))
  assert not other, other
  assert 'tfx==1.21.0' in runtime
  assert sorted(runtime) == _requirements('requirements.in')
  assert sorted(test_extra) == _requirements('requirements-test.in')
  assert any(re.match(r'pytest==', r) for r in test_extra), test_extra
  assert not [r for r in runtime if re.match(r'pytest([^-\w.]|$)', r)], runtime


# --- The documented install, in a throw-away virtualenv. --------------------------


def _setuptools_wheels():
  return glob.glob(os.path.join(DISTRIBUTION_WHEELS, 'setuptools-*.whl'))


@pytest.fixture(scope='module')
def installed(project, tmp_path_factory):
  """(venv, environment for its commands, pip's output) after the documented install."""
  venv = str(tmp_path_factory.mktemp('venv') / 'venv')
  base_python = getattr(sys, '_base_executable', None) or '/usr/bin/python3'
  _run([base_python, '-m', 'venv', venv])
  site_packages = _run(
      [os.path.join(venv, 'bin', 'python'), '-c',
       'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip()
  shared = sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']})
  # addsitedir so the environment's own .pth files apply too; a fresh known-paths
  # set so that pip's isolated build environments, which re-read this file to find
  # the paths to drop, drop these as well.
  with open(os.path.join(site_packages, '_mnist_tfx_shared_env.pth'), 'w') as f:
    f.write('import site; ' + '; '.join(
        f'site.addsitedir({path!r}, set())' for path in shared) + '\n')

  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
  env.update(PATH=os.path.join(venv, 'bin') + os.pathsep + env.get('PATH', ''),
             VIRTUAL_ENV=venv, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
  if _setuptools_wheels():
    build = ['--find-links', DISTRIBUTION_WHEELS]
  else:
    build = ['--no-build-isolation', '--check-build-dependencies']
  # The documented command, plus --no-index (and where setuptools comes from).
  result = _run([os.path.join(venv, 'bin', 'pip'), 'install', '--no-index', *build,
                 '-e', f'{project}[test]', '-c', os.path.join(project, 'requirements.lock')],
                env=env, cwd=str(tmp_path_factory.mktemp('cwd')))
  return venv, env, result.stdout


def test_documented_install_installs_only_the_project(installed):
  _, _, pip_output = installed
  lines = [line for line in pip_output.splitlines()
           if line.startswith('Successfully installed')]
  assert lines == [f'Successfully installed mnist-tfx-{pipeline.__version__}'], pip_output


def _command(installed, *args, cwd):
  venv, env, _ = installed
  command = os.path.join(venv, 'bin', 'mnist-tfx')
  assert os.path.isfile(command)
  return _run([command, *args], env=env, cwd=cwd, timeout=120).stdout


def test_installed_command_prints_the_package_version(installed, tmp_path):
  out = _command(installed, '--version', cwd=str(tmp_path))
  assert out.strip() == f'mnist-tfx {pipeline.__version__}'


def test_installed_command_imports_the_installed_project(installed, project, tmp_path):
  venv, env, _ = installed
  out = _run([os.path.join(venv, 'bin', 'python'), '-c',
              'import pipeline.cli.main; print(pipeline.cli.main.__file__)'],
             env=env, cwd=str(tmp_path)).stdout
  assert out.strip() == os.path.join(project, 'pipeline', 'cli', 'main.py')


def test_installed_command_help_lists_the_commands(installed, tmp_path):
  out = _command(installed, '--help', cwd=str(tmp_path))
  assert re.match(r'Usage: mnist-tfx \[OPTIONS\] COMMAND', out), out
  listed = set(re.findall(r'^  ([a-z][a-z-]*)\s', out.split('Commands:', 1)[-1], re.M))
  # Commands of main.py and of each command module beside it in pipeline/cli/.
  assert {'run', 'test', 'shell', 'serve', 'requests', 'compile'} <= listed, out
