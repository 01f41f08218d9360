"""tools/environment.sh: the environment cache, driven without the network.

The tests source the script and replace only `populate_<mode>` (the step that runs
debootstrap and pip) with a stand-in that fills the directory it is given; locking,
naming, the ready stamp, clean-up of unfinished builds and pruning are the real code.
"""

import os
import subprocess
import time

import pytest

from pipeline import config as config_lib

# Builds or drives the packaging and set-up scripts, not the product.
pytestmark = pytest.mark.packaging

ENV_SH = os.path.join(config_lib.REPO_ROOT, 'tools', 'environment.sh')
STAMP = '.mnist-tfx-ready'
# Fills the directory like a real build would, and records that it ran.
FAKE_POPULATE = 'mkdir -p "$1/bin"; echo "$1" >> "$CACHE_ROOT/builds.log"'


def _bash(cache, mode, body, populate=FAKE_POPULATE, path=None, onednn=None):
  script = f'source "{ENV_SH}"\npopulate_{mode}() {{ {populate}; }}\n{body}\n'
  env = dict(os.environ, MNIST_TFX_ENV_CACHE=str(cache), MNIST_TFX_ENV_MODE=mode)
  if path is not None:
    env['PATH'] = path
  # The caller's TF_ENABLE_ONEDNN_OPTS: its value, or unset (None).
  env.pop('TF_ENABLE_ONEDNN_OPTS', None)
  if onednn is not None:
    env['TF_ENABLE_ONEDNN_OPTS'] = onednn
  return subprocess.run(['bash', '-c', script], env=env, capture_output=True,
                        text=True, timeout=60, check=False)


def _env_dir(cache, mode) -> str:
  result = _bash(cache, mode, 'echo "$ENV_DIR"')
  assert result.returncode == 0, result.stderr
  return result.stdout.strip()


def _ready_env(cache, name, age_seconds):
  """A finished environment last used `age_seconds` ago."""
  path = os.path.join(cache, name)
  os.makedirs(os.path.join(path, 'bin'))
  stamp = os.path.join(path, STAMP)
  open(stamp, 'w').close()
  when = time.time() - age_seconds
  os.utime(stamp, (when, when))
  return path


def _builds(cache):
  log = os.path.join(cache, 'builds.log')
  return open(log).read().splitlines() if os.path.exists(log) else []


def _entries(cache):
  return sorted(e for e in os.listdir(cache)
                if e not in ('builds.log', '.build.lock'))


@pytest.mark.parametrize('mode', ['chroot', 'venv'])
def test_first_call_on_an_empty_cache_builds_and_succeeds(tmp_path, mode):
  cache = tmp_path / 'cache'  # does not exist yet
  result = _bash(cache, mode, 'ensure')
  assert result.returncode == 0, result.stderr
  env_dir = _env_dir(cache, mode)
  assert os.path.isfile(os.path.join(env_dir, STAMP))
  assert _entries(cache) == [os.path.basename(env_dir)]
  assert _builds(cache) == [env_dir + ('.partial' if mode == 'chroot' else '')]
  assert 'environment ready in' in result.stderr


@pytest.mark.parametrize('others', [1, 2, 3])
def test_keeps_the_two_most_recently_used_environments(tmp_path, others):
  cache = str(tmp_path)
  # venv-old0 is the most recently used of the others, venv-old2 the least.
  old = [_ready_env(cache, f'venv-old{i}', age_seconds=100 * (i + 1))
         for i in range(others)]
  old.append(_ready_env(cache, 'rootfs-trixie-old9', age_seconds=10_000))
  result = _bash(cache, 'chroot', 'ensure')
  assert result.returncode == 0, result.stderr
  env_dir = _env_dir(cache, 'chroot')
  assert _entries(cache) == sorted([os.path.basename(env_dir), 'venv-old0'])
  for gone in old[1:]:
    assert f'removing an older environment: {gone}' in result.stderr


def test_a_ready_environment_is_used_without_building(tmp_path):
  cache = str(tmp_path)
  env_dir = _env_dir(cache, 'venv')
  _ready_env(cache, os.path.basename(env_dir), age_seconds=1000)
  others = [_ready_env(cache, f'venv-old{i}', age_seconds=10 + i) for i in range(3)]
  before = os.path.getmtime(os.path.join(env_dir, STAMP))
  result = _bash(cache, 'venv', 'ensure')
  assert result.returncode == 0, result.stderr
  assert _builds(cache) == []
  assert os.path.getmtime(os.path.join(env_dir, STAMP)) > before  # now most recent
  assert all(os.path.isdir(o) for o in others)  # pruning only follows a build


@pytest.mark.parametrize('mode', ['chroot', 'venv'])
def test_half_built_leftovers_are_replaced(tmp_path, mode):
  cache = str(tmp_path)
  env_dir = _env_dir(cache, mode)
  # What a build cut short leaves: a .partial, or a venv without its stamp, for
  # this key and for another one.
  for leftover in (env_dir + '.partial', env_dir,
                   os.path.join(cache, 'rootfs-trixie-other.partial'),
                   os.path.join(cache, 'venv-other')):
    os.makedirs(os.path.join(leftover, 'half'))
  result = _bash(cache, mode, 'ensure')
  assert result.returncode == 0, result.stderr
  assert _entries(cache) == [os.path.basename(env_dir)]
  assert not os.path.exists(os.path.join(env_dir, 'half'))
  assert os.path.isfile(os.path.join(env_dir, STAMP))


@pytest.mark.parametrize('mode', ['chroot', 'venv'])
def test_a_failed_build_leaves_nothing_that_looks_ready(tmp_path, mode):
  cache = str(tmp_path)
  kept = _ready_env(cache, 'venv-old0', age_seconds=100)
  result = _bash(cache, mode, 'ensure',
                 populate='mkdir -p "$1/half"; echo "pip: no network" >&2; exit 1')
  assert result.returncode == 1
  assert 'pip: no network' in result.stderr
  assert _entries(cache) == ['venv-old0']
  assert os.path.isfile(os.path.join(kept, STAMP))
  # The next call builds it.
  assert _bash(cache, mode, 'ensure').returncode == 0
  assert os.path.isfile(os.path.join(_env_dir(cache, mode), STAMP))


def test_a_concurrent_second_caller_waits_and_uses_the_same_build(tmp_path):
  cache = str(tmp_path)
  env = dict(os.environ, MNIST_TFX_ENV_CACHE=cache, MNIST_TFX_ENV_MODE='chroot')
  script = (f'source "{ENV_SH}"\n'
            f'populate_chroot() {{ sleep 2; {FAKE_POPULATE}; }}\nensure\n'
            'test -f "$READY" && echo ready\n')
  callers = [subprocess.Popen(['bash', '-c', script], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
  outputs = [c.communicate(timeout=60) for c in callers]
  assert [c.returncode for c in callers] == [0, 0], outputs
  assert [out for out, _ in outputs] == ['ready\n', 'ready\n']
  assert len(_builds(cache)) == 1
  assert any('waiting for it' in err for _, err in outputs)
  assert _entries(cache) == [os.path.basename(_env_dir(cache, 'chroot'))]


def test_exec_runs_the_command_inside_the_virtualenv(tmp_path):
  cache = str(tmp_path)
  populate = (FAKE_POPULATE + '; printf "#!/bin/sh\\necho inside \\$MNIST_TFX_IN_ENV\\n"'
              ' > "$1/bin/probe"; chmod +x "$1/bin/probe"')
  result = _bash(cache, 'venv', 'main exec probe', populate=populate)
  assert result.returncode == 0, result.stderr
  assert result.stdout == 'inside 1\n'


@pytest.mark.parametrize('callers, expected', [(None, '1'), ('0', '0')])
def test_exec_turns_on_onednn_unless_the_caller_turned_it_off(tmp_path, callers,
                                                              expected):
  populate = (FAKE_POPULATE + '; printf "#!/bin/sh\\necho \\$TF_ENABLE_ONEDNN_OPTS\\n"'
              ' > "$1/bin/probe"; chmod +x "$1/bin/probe"')
  result = _bash(str(tmp_path), 'venv', 'main exec probe', populate=populate,
                 onednn=callers)
  assert result.returncode == 0, result.stderr
  assert result.stdout == f'{expected}\n'


def _fake_bin(tmp_path, python3_script=None):
  """A PATH with python3 (the real one, or `python3_script`) and nothing else."""
  fake_bin = tmp_path / 'bin'
  fake_bin.mkdir()
  python3 = fake_bin / 'python3'
  if python3_script:
    python3.write_text(python3_script)
    python3.chmod(0o755)
  else:
    python3.symlink_to(subprocess.run(
        ['bash', '-c', 'command -v python3'], capture_output=True, text=True,
        check=True).stdout.strip())
  return str(fake_bin)


def test_venv_prerequisites_name_what_is_missing(tmp_path):
  result = _bash(tmp_path / 'cache', 'venv', f'PATH="{_fake_bin(tmp_path)}"; '
                 'venv_prerequisites')
  assert result.returncode == 1
  assert 'missing g++' in result.stderr
  assert 'python3-venv' not in result.stderr


def test_venv_prerequisites_without_venv_or_headers(tmp_path):
  # A Python without venv and headers (Debian's bare python3) cannot be had on
  # this machine: a python3 whose every check fails stands in for it.
  fake = _fake_bin(tmp_path, '#!/bin/sh\nexit 1\n')
  result = _bash(tmp_path / 'cache', 'venv', f'PATH="{fake}"; venv_prerequisites')
  assert result.returncode == 1
  assert 'missing python3-venv python3-dev g++' in result.stderr
  assert 'apt-get install python3-venv python3-dev g++' in result.stderr

