"""`mnist-tfx compile` renders a KServe InferenceService beside TF Serving's
Deployment: tensorflow predictor, storageUri at the Pusher's model base path,
the same TF Serving version, checked field by field."""

import copy

from click.testing import CliRunner
import pytest
import yaml

from kubeflow import manifests
from pipeline.cli import main as cli
from tests.test_kubeflow import SETTINGS, VOLUME_SETTINGS, _config


def _compiled(tmp_path, settings):
  args = ['compile', '--output', str(tmp_path / 'pipeline.yaml')]
  for assignment in settings:
    args += ['--set', assignment]
  result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
  assert result.exit_code == 0, result.output
  assert 'KServe InferenceService: ' in result.output
  with open(tmp_path / 'kserve-inferenceservice.yaml', encoding='utf-8') as f:
    [doc] = [d for d in yaml.safe_load_all(f) if d]
  return doc


def test_inference_service_on_object_storage(tmp_path):
  doc = _compiled(tmp_path, SETTINGS)
  assert doc['apiVersion'] == 'serving.kserve.io/v1beta1'
  assert doc['kind'] == 'InferenceService'
  assert doc['metadata']['name'] == 'mnist'
  tensorflow = doc['spec']['predictor']['tensorflow']
  # The folder of numbered versions, which is what the Pusher writes and what
  # TF Serving's --model_base_path (KServe mounts it at /mnt/models) wants.
  assert tensorflow['storageUri'] == 'gs://mnist-test/serving/mnist'
  assert tensorflow['storageUri'] == manifests.model_base_path(_config(SETTINGS))
  # The same TF Serving as the Deployment in serving.yaml.
  assert manifests.tf_serving_image() == (
      f'tensorflow/serving:{tensorflow["runtimeVersion"]}')
  assert tensorflow['resources']['limits']['memory'] == '2Gi'


def test_inference_service_on_the_volume_claim(tmp_path):
  doc = _compiled(tmp_path, VOLUME_SETTINGS)
  assert doc['spec']['predictor']['tensorflow']['storageUri'] == (
      'pvc://mnist-tfx-data/serving/mnist')


def test_a_local_serving_root_cannot_be_served_by_kserve():
  config = _config(SETTINGS[:1] + ['kubeflow.serving_root=/somewhere/local'])
  with pytest.raises(manifests.ManifestError, match='KServe cannot read'):
    manifests.render_inference_service(config)


@pytest.mark.parametrize('mutate, error', [
    (lambda d: d['spec']['predictor']['tensorflow'].update(storgeUri='x'),
     'storgeUri: not a field'),
    (lambda d: d['spec']['predictor']['tensorflow'].update(
        resources={'limit': {'cpu': '1'}}), 'resources.limit: not a field'),
    (lambda d: d['spec']['predictor']['tensorflow'].update(runtimeVersion=2),
     'runtimeVersion: not a string'),
    (lambda d: d['metadata'].update(label={'a': 'b'}), 'metadata.label'),
    (lambda d: d.update(kind='InferenceServce'), 'expected serving.kserve.io'),
    (lambda d: d['spec']['predictor'].update(sklearn={}), 'only tensorflow'),
])
def test_validation_catches_misspelt_fields(mutate, error):
  doc = copy.deepcopy(manifests.render_inference_service(_config(SETTINGS)))
  mutate(doc)
  with pytest.raises(manifests.ManifestError, match=error):
    manifests.validate_inference_service(doc)
