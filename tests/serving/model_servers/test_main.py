"""`python -m serving` (serving/model_servers/main.py): TF Serving's flags, the
start-up report, a quiet terminal, a clean stop on SIGTERM. Each flag's effect
is checked in test_server.py."""

import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import serving_contract as contract
from pipeline import client as client_lib
from pipeline import config as config_lib
from serving.model_servers import options as options_lib
from serving.model_servers import process as process_lib
from tests.testutil import stand_in_models

REPO = config_lib.REPO_ROOT


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'serving', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_help_lists_tf_serving_flags():
  result = _run('--help')
  assert result.returncode == 0, result.stderr
  for flag in ('--port', '--rest_api_port', '--model_name', '--model_base_path',
               '--model_config_file', '--enable_batching',
               '--batching_parameters_file', '--monitoring_config_file',
               '--version'):
    assert flag in result.stdout
  assert '--profile' not in result.stdout  # mnist-tfx serve's own


def test_version_flag():
  result = _run('--version')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].startswith('TensorFlow ModelServer: ')
  assert lines[1] == f'TensorFlow Library: {tf.__version__}'


def test_no_model_is_a_usage_error():
  """TF Serving refuses to start without a model; so does `python -m serving`
  (`mnist-tfx serve` serves the pushed model instead)."""
  result = _run(f'--port={options_lib.ServerOptions.port}')
  assert result.returncode == 2
  assert ('Both server_options.model_base_path and '
          'server_options.model_config_file are empty!') in result.stderr


@pytest.mark.processes
def test_serve_flags_batching_file_and_sigterm(model_base_path):
  """The real command in its own process: flags, batching file, SIGTERM."""
  server = process_lib.ServerProcess(
      '--model_name=digits', f'--model_base_path={model_base_path}',
      '--enable_batching',
      '--batching_parameters_file=serving/batching_parameters.txt',
      '--version_label', 'stable=1',
      rest_api_port=process_lib.free_port(), cwd=REPO)
  with server.start():
    output = server.text()
    assert 'model digits: versions [1]' in output
    assert f'gRPC API at 127.0.0.1:{server.grpc_port}' in output
    assert 'batching: max_batch_size 64' in output
    images = stand_in_models.random_images(3)
    with client_lib.GrpcClient(server.grpc_target, 'digits') as client:
      by_label = client.predict(images, contract.DEFAULT_SIGNATURE,
                                version_label='stable')
      assert by_label.model_version == 1
    with client_lib.RestClient(f'127.0.0.1:{server.rest_port}',
                               'digits') as client:
      np.testing.assert_allclose(client.predict(images).probabilities,
                                 by_label.probabilities, atol=1e-6)
    assert server.stop() == 0, server.text()
  everything = server.text()
  assert 'server stopped' in everything
  # A quiet terminal: none of TensorFlow's C++ start-up lines (without -v).
  noise = re.compile(r'cuInit|cuda|oneDNN|absl::InitializeLog|^[IWEF]\d{4} ',
                     re.M | re.I)
  assert not noise.search(everything), everything
