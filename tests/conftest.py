"""Shared fixtures: real MNIST (fetched once), small slices of it, the model the
smoke pipeline pushes, and request logs a server wrote. Helpers are in testutil/;
TensorFlow is imported by the fixtures that need it, so that tests without it
start fast."""

import fcntl
import os

import pytest

from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline import data
from tests.testutil import mnist_files
from tests.testutil import pipeline_runs

MNIST_DIR = os.path.join(config_lib.REPO_ROOT, 'data', 'mnist')

# The tiers of pytest.ini. A test that needs the shared smoke run is in the
# `pipeline` tier without saying so, and all of them run on one test worker
# (`--dist loadgroup`), which then makes that run once for all of them. A test
# that names a group of its own keeps it, and its worker makes the run again:
# worth it only for a long test that mostly waits (the Spark cluster's), so that
# it runs beside the others.
TIERS = ('pipeline', 'processes', 'packaging', 'distributed')
SMOKE_RUN_FIXTURES = {'smoke_run', 'smoke_pipeline', 'smoke_model_version'}


def pytest_itemcollected(item):
  # As each test is collected, before pytest-xdist reads the groups.
  if SMOKE_RUN_FIXTURES & set(getattr(item, 'fixturenames', ())):
    item.add_marker(pytest.mark.pipeline)
    if not item.get_closest_marker('xdist_group'):
      item.add_marker(pytest.mark.xdist_group('smoke_run'))
  if not any(item.get_closest_marker(tier) for tier in TIERS):
    item.add_marker(pytest.mark.unit)


@pytest.fixture(scope='session')
def mnist_dir() -> str:
  """The full MNIST IDX files, fetched and checksum-verified on first use (by
  one test worker; the others wait for it)."""
  os.makedirs(os.path.dirname(MNIST_DIR), exist_ok=True)
  with open(os.path.join(os.path.dirname(MNIST_DIR), '.fetch.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    data.ensure(MNIST_DIR)
  return MNIST_DIR


@pytest.fixture(scope='session')
def small_mnist_dir(mnist_dir, tmp_path_factory) -> str:
  """1200 train and 300 test images of real MNIST, gzipped like the classic files."""
  return mnist_files.write_slice(
      mnist_dir, str(tmp_path_factory.mktemp('small_mnist')), train=1200,
      test=300, gzipped=True)


@pytest.fixture(scope='session')
def smoke_run(mnist_dir, tmp_path_factory) -> pipeline_runs.CliRun:
  """The one pipeline run the suite shares: `mnist-tfx run --profile smoke` on
  real MNIST (the first 2000 training and 500 test images), in its own process as
  a user starts it, with a second run on its output directory started meanwhile.

  Tests read it and never change it: a test that runs the pipeline again works on
  a copy (pipeline_runs.copy_run). Its first pushed version,
  <model_base_path>/1, is the trained model.
  """
  return pipeline_runs.run_from_cli('smoke', mnist_dir,
                                    str(tmp_path_factory.mktemp('smoke')))


@pytest.fixture(scope='session')
def smoke_pipeline(smoke_run):
  """The config of the shared smoke run, which completed."""
  assert smoke_run.returncode == 0, smoke_run.out + smoke_run.err
  return smoke_run.config


@pytest.fixture(scope='session')
def smoke_model_version(smoke_pipeline) -> str:
  """The version directory the smoke run pushed."""
  path = os.path.join(smoke_pipeline.model_base_path, '1')
  assert os.path.exists(os.path.join(path, 'saved_model.pb')), path
  return path


@pytest.fixture(scope='module')
def model_base_path(tmp_path_factory) -> str:
  """A base path of the module's own holding, as version 1 of the model named
  contract.MODEL_NAME: a stand-in with the pushed model's signatures
  (testutil/stand_in_models.py), so that serving tests need no pipeline run."""
  from tests.testutil import stand_in_models  # pylint: disable=g-import-not-at-top
  base_path = str(tmp_path_factory.mktemp('serving') / contract.MODEL_NAME)
  stand_in_models.write_version(base_path, 1)
  return base_path


@pytest.fixture(scope='session')
def logged(tmp_path_factory) -> dict:
  """Request logs of every kind of request, written by a server on a stand-in
  model, for the logging, log reader and `mnist-tfx requests` tests
  (request_logs.log_requests says what was sent and answered)."""
  # pylint: disable=g-import-not-at-top
  from tests.testutil import request_logs
  from tests.testutil import stand_in_models
  root = tmp_path_factory.mktemp('request_logs')
  base_path = str(root / 'models' / contract.MODEL_NAME)
  stand_in_models.write_version(base_path, 1)
  return request_logs.log_requests(base_path, root)
