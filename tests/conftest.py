"""Shared fixtures: real MNIST (fetched once), small slices of it, the model the
smoke pipeline pushes, and request logs a server wrote. Helpers are in testutil/;
TensorFlow is imported by the fixtures that need it, so that tests without it
start fast."""

import os

import pytest

from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline import data
from tests.testutil import mnist_files

MNIST_DIR = os.path.join(config_lib.REPO_ROOT, 'data', 'mnist')


@pytest.fixture(scope='session')
def mnist_dir() -> str:
  """The full MNIST IDX files, fetched and checksum-verified on first use."""
  data.ensure(MNIST_DIR)
  return MNIST_DIR


@pytest.fixture(scope='session')
def small_mnist_dir(mnist_dir, tmp_path_factory) -> str:
  """1200 train and 300 test images of real MNIST, gzipped like the classic files."""
  return mnist_files.write_slice(
      mnist_dir, str(tmp_path_factory.mktemp('small_mnist')), train=1200,
      test=300, gzipped=True)


@pytest.fixture(scope='session')
def smoke_pipeline(mnist_dir, tmp_path_factory):
  """The smoke profile run once on real MNIST: its config, after the run.

  Its first pushed version, <model_base_path>/1, is the model the serving tests
  serve (a real model trained by the pipeline, with the pushed signatures).
  """
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  config = config_lib.load('smoke', data_dir=mnist_dir,
                           output_dir=str(tmp_path_factory.mktemp('smoke')))
  local_runner.run(config, out=lambda line: None)
  return config


@pytest.fixture(scope='session')
def smoke_model_version(smoke_pipeline) -> str:
  """The version directory the smoke run pushed."""
  path = os.path.join(smoke_pipeline.model_base_path, '1')
  assert os.path.exists(os.path.join(path, 'saved_model.pb')), path
  return path


@pytest.fixture(scope='module')
def model_base_path(tmp_path_factory, smoke_model_version) -> str:
  """A base path of the module's own holding, as version 1 of the model named
  contract.MODEL_NAME, the model the smoke pipeline pushed."""
  from tests.testutil import stand_in_models  # pylint: disable=g-import-not-at-top
  base_path = str(tmp_path_factory.mktemp('serving') / contract.MODEL_NAME)
  stand_in_models.write_version(base_path, 1, template=smoke_model_version)
  return base_path


@pytest.fixture(scope='session')
def logged(smoke_model_version, tmp_path_factory) -> dict:
  """Request logs of every kind of request, written by a server on the smoke
  model, for the logging, log reader and `mnist-tfx requests` tests
  (request_logs.log_requests says what was sent and answered)."""
  # pylint: disable=g-import-not-at-top
  from tests.testutil import request_logs
  from tests.testutil import stand_in_models
  root = tmp_path_factory.mktemp('request_logs')
  base_path = str(root / 'models' / contract.MODEL_NAME)
  stand_in_models.write_version(base_path, 1, template=smoke_model_version)
  return request_logs.log_requests(base_path, root)
