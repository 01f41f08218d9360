"""`mnist-tfx` in the test process (click's runner) or as a real process, and what
a command may leave on disk."""

import hashlib
import os
import subprocess
import sys

from click.testing import CliRunner

from pipeline import config as config_lib
from pipeline.cli import main as cli


def invoke(*args):
  """(exit code, output) of `mnist-tfx ARGS` run in this process."""
  result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
  return result.exit_code, result.output


def mnist_tfx(*args, cwd):
  """`mnist-tfx ARGS` as a real process (`python -m pipeline.cli`, what the
  wrapper and the entry point run), so TensorFlow's start-up output would show."""
  env = dict(os.environ, PYTHONPATH=config_lib.REPO_ROOT)
  return subprocess.run([sys.executable, '-m', 'pipeline.cli', *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=120,
                        check=False)


def snapshot(root) -> dict:
  """Every file and folder under `root`, with its size, mtime and content hash."""
  found = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      found[os.path.relpath(os.path.join(folder, name), root)] = 'dir'
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      stat = os.stat(path)
      found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns, digest)
  return found


def assert_one_line_error(result, status, *fragments):
  """A process that failed as a user's mistake should: one line, exit `status`."""
  output = (result.stdout + result.stderr).strip()
  assert result.returncode == status, output
  assert len(output.splitlines()) == 1, output
  assert output.startswith('Error: '), output
  assert 'Traceback' not in output
  for fragment in fragments:
    assert fragment in output, output
