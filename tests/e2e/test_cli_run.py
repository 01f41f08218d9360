"""`mnist-tfx run` as a user sees it: what it prints, and two runs at once.

One real smoke run (a real process, LocalDagRunner on a slice of MNIST) while a
second run on the same output directory is started and refused.
"""

import os
import re
import subprocess
import sys

import pytest

from components import atomic_pusher
from pipeline import config as config_lib
from pipeline import mlmd

# What only the log file may hold: TensorFlow's C++ start-up lines, Python
# warnings, TFX/Beam INFO logs, the user-code wheel build, Keras' own epoch lines.
NOISE = re.compile(
    r'oneDNN|cuda|absl::InitializeLog|^[IWE]\d{4} |Warning|warnings\.warn|'
    r'setuptools|bdist_wheel|running egg_info|^INFO|^WARNING|^\d+/\d+ - \d+s',
    re.IGNORECASE)


def _start(args, cwd):
  env = dict(os.environ, PYTHONPATH=config_lib.REPO_ROOT)
  return subprocess.Popen([sys.executable, '-m', 'pipeline.cli', *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


@pytest.fixture(scope='module')
def two_runs(small_mnist_dir, tmp_path_factory):
  """A smoke run, and a second run on its output dir started while it runs."""
  workdir = tmp_path_factory.mktemp('two_runs')
  output_dir = str(workdir / 'out')
  args = ['run', '--profile', 'smoke', '--data-dir', small_mnist_dir,
          '--output-dir', output_dir]
  first = _start(args, workdir)
  lines = []
  for line in first.stdout:  # until the first run is inside the pipeline
    lines.append(line)
    if line.startswith('[1/'):
      break
  second = _start(args, workdir)
  second_out, second_err = second.communicate(timeout=120)
  rest, first_err = first.communicate(timeout=600)
  config = config_lib.load('smoke', data_dir=small_mnist_dir, output_dir=output_dir)
  return dict(config=config, first=first, first_out=''.join(lines) + rest,
              first_err=first_err, second=second,
              second_output=(second_out + second_err).strip())


def test_the_second_run_is_refused_with_one_line(two_runs):
  assert two_runs['second'].returncode == 1
  output = two_runs['second_output']
  assert len(output.splitlines()) == 1, output
  assert re.fullmatch(
      r'Error: another `mnist-tfx run` \(pid \d+\) is using \S+/out: wait for it '
      r'to finish, or give another --output-dir', output), output


def test_the_first_run_completes_and_metadata_and_serving_are_intact(two_runs):
  assert two_runs['first'].returncode == 0, two_runs['first_err']
  config = two_runs['config']
  nodes = mlmd.latest_run(config)
  assert len(nodes) == 11
  assert {node.state for node in nodes} == {'COMPLETE'}
  assert atomic_pusher.versions(config.model_base_path) == [1], two_runs['first_out']
  assert sorted(os.listdir(config.model_base_path)) == ['1']  # no staging left


def test_a_run_prints_progress_epochs_and_summary_only(two_runs):
  out = two_runs['first_out']
  assert two_runs['first_err'] == ''
  lines = out.splitlines()
  for wanted in (r'^log: \S+/out/logs/run-\d{8}-\d{6}\.log$',
                 r'^\[1/11\] IdxExampleGen done in \d+\.\d s$',
                 r'^\[8/11\] Trainer \.\.\.$',
                 r'^ +Epoch 1/3: loss \d\.\d{4}, accuracy .* left\)$',
                 r'^ +Epoch 3/3: ',
                 r'^\[10/11\] InfraValidator done in',
                 r'^\[11/11\] Pusher done in',
                 r'^test accuracy: candidate \d+\.\d\d%',
                 r'^infra validation: passed \(3 signatures, 12 requests\)$',
                 r'^pushed as new version 1$',
                 r'^report: \S+/index\.html$'):
    assert any(re.search(wanted, line) for line in lines), (wanted, out)
  noisy = [line for line in lines if NOISE.search(line)]
  assert not noisy, noisy


def test_everything_else_is_in_the_log_file(two_runs):
  log_path = re.search(r'^log: (\S+)$', two_runs['first_out'], re.M).group(1)
  with open(log_path) as f:
    log = f.read()
  assert 'Component Trainer is running.' in log  # TFX's INFO logging
  assert 'oneDNN' in log  # TensorFlow's C++ start-up line
  assert re.search(r'^\d+/\d+ - \d+s - loss: ', log, re.M)  # Keras' epoch output
