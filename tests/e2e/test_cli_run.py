"""`mnist-tfx run` as a user sees it: what it prints, and two runs at once.

The suite's shared smoke run (`smoke_run`, tests/conftest.py) is a real process,
LocalDagRunner on a slice of MNIST, and a second run on the same output
directory was started while it ran.
"""

import os
import re

import pytest

from components import atomic_pusher
from pipeline import mlmd

# Runs the pipeline, or reads the shared smoke run.
pytestmark = pytest.mark.pipeline

# What only the log file may hold: TensorFlow's C++ start-up lines, Python
# warnings, TFX/Beam INFO logs, the user-code wheel build, Keras' own epoch lines.
NOISE = re.compile(
    r'oneDNN|cuda|absl::InitializeLog|^[IWE]\d{4} |Warning|warnings\.warn|'
    r'setuptools|bdist_wheel|running egg_info|^INFO|^WARNING|^\d+/\d+ - \d+s',
    re.IGNORECASE)


def test_the_second_run_is_refused_with_one_line(smoke_run):
  assert smoke_run.second_returncode == 1
  output = smoke_run.second_output
  assert len(output.splitlines()) == 1, output
  assert re.fullmatch(
      r'Error: another `mnist-tfx run` \(pid \d+\) is using \S+/out: wait for it '
      r'to finish, or give another --output-dir', output), output


def test_the_first_run_completes_and_metadata_and_serving_are_intact(smoke_run):
  assert smoke_run.returncode == 0, smoke_run.err
  config = smoke_run.config
  nodes = mlmd.latest_run(config)
  assert len(nodes) == 11
  assert {node.state for node in nodes} == {'COMPLETE'}
  assert atomic_pusher.versions(config.model_base_path) == [1], smoke_run.out
  assert sorted(os.listdir(config.model_base_path)) == ['1']  # no staging left


def test_a_run_prints_progress_epochs_and_summary_only(smoke_run):
  out = smoke_run.out
  assert smoke_run.err == ''
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


def test_everything_else_is_in_the_log_file(smoke_run):
  log_path = re.search(r'^log: (\S+)$', smoke_run.out, re.M).group(1)
  with open(log_path) as f:
    log = f.read()
  assert 'Component Trainer is running.' in log  # TFX's INFO logging
  assert 'oneDNN' in log  # TensorFlow's C++ start-up line
  assert re.search(r'^\d+/\d+ - \d+s - loss: ', log, re.M)  # Keras' epoch output
