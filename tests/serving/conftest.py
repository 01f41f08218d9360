"""The model the smoke pipeline pushed, served in this process (free loopback
ports, batching on), for the tests of the gRPC and REST front ends and clients."""

import os

import pytest
import tensorflow as tf

from models import serving_contract as contract
from tests.testutil import model_servers
from tests.testutil import stand_in_models


@pytest.fixture(scope='module')
def version(model_base_path):
  return stand_in_models.latest_version(model_base_path)


@pytest.fixture(scope='module')
def reference(model_base_path, version):
  """The served SavedModel, called in-process: the expected answers."""
  return tf.saved_model.load(os.path.join(model_base_path, str(version)))


@pytest.fixture(scope='module')
def server(model_base_path, tmp_path_factory):
  # A batch timeout makes concurrent requests batch deterministically.
  params = tmp_path_factory.mktemp('batching') / 'batching_parameters.txt'
  params.write_text('max_batch_size { value: 16 }\n'
                    'batch_timeout_micros { value: 20000 }\n')
  server = model_servers.start_server(
      (contract.MODEL_NAME, model_base_path), enable_batching=True,
      batching_parameters_file=str(params), file_system_poll_wait_seconds=0)
  yield server
  server.stop()


@pytest.fixture(scope='module')
def images():
  return stand_in_models.random_images(6, seed=1)
