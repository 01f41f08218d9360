"""The pipeline compiled once for the Kubeflow tests: with and without a volume,
and with the Beam steps on Flink."""

import pytest

from tests.testutil import kubeflow_specs


@pytest.fixture(scope='package')
def compiled(tmp_path_factory):
  return kubeflow_specs.Compiled(tmp_path_factory.mktemp('kubeflow'),
                                 kubeflow_specs.SETTINGS)


@pytest.fixture(scope='package')
def compiled_with_volume(tmp_path_factory):
  return kubeflow_specs.Compiled(tmp_path_factory.mktemp('kubeflow_volume'),
                                 kubeflow_specs.VOLUME_SETTINGS)


@pytest.fixture(scope='package')
def compiled_flink(tmp_path_factory):
  return kubeflow_specs.Compiled(tmp_path_factory.mktemp('kubeflow_flink'),
                                 kubeflow_specs.FLINK_SETTINGS)
