"""serving/tf_serving_docker.sh: the real TF Serving's command line, with the
ports (serving/model_servers/options.py) and model name
(models/serving_contract.py) the script spells again because a shell script
cannot import them."""

import os
import subprocess

import pytest

from models import serving_contract as contract
from pipeline import config as config_lib
from serving.model_servers import options as options_lib

# Builds or drives the packaging and set-up scripts, not the product.
pytestmark = pytest.mark.packaging

REPO = config_lib.REPO_ROOT


def test_tf_serving_docker_command():
  """The real TF Serving's command line (printed: no Docker engine here)."""
  result = subprocess.run(
      ['bash', os.path.join(REPO, 'serving', 'tf_serving_docker.sh'),
       '/models/base'], env={**os.environ, 'DRY_RUN': '1'},
      capture_output=True, text=True, check=True)
  words = result.stdout.split()
  assert words[:2] == ['docker', 'run']
  grpc_port = options_lib.ServerOptions.port
  rest_port = options_lib.DOCKER_REST_API_PORT
  assert f'{grpc_port}:{grpc_port}' in words
  assert f'{rest_port}:{rest_port}' in words
  assert ('type=bind,source=/models/base,target=/models/'
          f'{contract.MODEL_NAME},readonly' in words)
  batching_file = os.path.join(REPO, 'serving', 'batching_parameters.txt')
  assert (f'type=bind,source={batching_file},target=/config/'
          'batching_parameters.txt,readonly') in words
  assert f'MODEL_NAME={contract.MODEL_NAME}' in words
  assert words[-3].startswith('tensorflow/serving:')
  assert words[-2:] == ['--enable_batching=true',
                        '--batching_parameters_file=/config/batching_parameters.txt']

