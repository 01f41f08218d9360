"""TF Serving's manifests for the compiled pipeline (kubeflow/manifests.py): the
Deployment and Service of kubeflow/serving.yaml rendered for a config, and a KServe
InferenceService beside them (tensorflow predictor, storageUri at the Pusher's
model base path, the same TF Serving version), checked field by field against the
Kubernetes API models.
"""

import copy
import os

import pytest
import yaml

from kubeflow import manifests
from serving import batching
from serving import options as serving_options
from tests.testutil.kubeflow_specs import SETTINGS
from tests.testutil.kubeflow_specs import VOLUME_SETTINGS
from tests.testutil.kubeflow_specs import compile_with
from tests.testutil.kubeflow_specs import config_with
from tests.testutil.kubeflow_specs import only
from tests.testutil.kubeflow_specs import serving_container


# --- TF Serving's Deployment and Service -------------------------------------


def test_serving_manifests_parse_as_kubernetes_objects():
  docs = manifests.load()
  assert sorted(doc['kind'] for doc in docs) == ['ConfigMap', 'Deployment',
                                                 'Service']
  for doc in docs:
    manifests.validate(doc)


def test_serving_manifests_serve_the_model_like_the_local_server(compiled):
  config, docs = compiled.config, compiled.serving
  for doc in docs:
    manifests.validate(doc)
  container = serving_container(docs)
  assert container['image'].startswith('tensorflow/serving:')
  args = dict(arg.split('=', 1) if '=' in arg else (arg, '')
              for arg in container['args'])
  assert args['--model_name'] == config.model_name
  # The ports the local server and its clients use (serving/options.py).
  grpc_port = serving_options.ServerOptions.port
  rest_port = serving_options.DOCKER_REST_API_PORT
  assert args['--port'] == str(grpc_port)
  assert args['--rest_api_port'] == str(rest_port)
  assert '--enable_batching' in args
  ports = {p['name']: p['containerPort'] for p in container['ports']}
  assert ports == {'grpc': grpc_port, 'http': rest_port}
  probe = container['readinessProbe']['httpGet']
  assert probe['path'] == f'/v1/models/{config.model_name}'
  assert ports[probe['port']] == rest_port
  service = only(docs, 'Service')
  assert {p['port']: ports[p['targetPort']] for p in service['spec']['ports']} == {
      grpc_port: grpc_port, rest_port: rest_port}
  pod_labels = only(docs, 'Deployment')['spec']['template']['metadata']['labels']
  assert service['spec']['selector'].items() <= pod_labels.items()


def test_batching_parameters_are_mounted_and_valid(compiled):
  docs = compiled.serving
  container = serving_container(docs)
  path = next(a.split('=', 1)[1] for a in container['args']
              if a.startswith('--batching_parameters_file='))
  mount = next(m for m in container['volumeMounts']
               if path.startswith(m['mountPath'] + '/'))
  pod = only(docs, 'Deployment')['spec']['template']['spec']
  volume = next(v for v in pod['volumes'] if v['name'] == mount['name'])
  config_map = only(docs, 'ConfigMap')
  assert volume['configMap']['name'] == config_map['metadata']['name']
  text = config_map['data'][os.path.relpath(path, mount['mountPath'])]
  with open(manifests.BATCHING_PARAMETERS, encoding='utf-8') as f:
    assert text == f.read()  # the same batching as the local server
  batching.parse_batching_parameters(text)  # TF Serving's text format


def test_a_typo_in_a_manifest_fails():
  deployment = only(manifests.load(), 'Deployment')
  misspelt = copy.deepcopy(deployment)
  container = misspelt['spec']['template']['spec']['containers'][0]
  container['readinesProbe'] = container.pop('readinessProbe')
  with pytest.raises(manifests.ManifestError, match='readinesProbe'):
    manifests.validate(misspelt)
  wrong_type = copy.deepcopy(deployment)
  wrong_type['spec']['replicas'] = 'one'
  with pytest.raises(manifests.ManifestError):
    manifests.validate(wrong_type)
  no_name = copy.deepcopy(deployment)
  del no_name['spec']['template']['spec']['containers'][0]['name']
  with pytest.raises(manifests.ManifestError):
    manifests.validate(no_name)


def test_tf_serving_mounts_the_volume_claim(compiled_with_volume):
  docs = compiled_with_volume.serving
  for doc in docs:
    manifests.validate(doc)
  pod = only(docs, 'Deployment')['spec']['template']['spec']
  assert {'name': manifests.MODEL_VOLUME, 'persistentVolumeClaim': {
      'claimName': 'mnist-tfx-data', 'readOnly': True}} in pod['volumes']
  container = serving_container(docs)
  assert {'name': manifests.MODEL_VOLUME, 'mountPath': '/mnt/mnist',
          'readOnly': True} in container['volumeMounts']
  assert '--model_base_path=/mnt/mnist/serving/mnist' in container['args']


# --- KServe's InferenceService ----------------------------------------------


def _inference_service(tmp_path, settings):
  """The InferenceService `mnist-tfx compile` writes beside the pipeline spec."""
  _, output = compile_with(tmp_path, settings)
  assert 'KServe InferenceService: ' in output
  with open(tmp_path / 'kserve-inferenceservice.yaml', encoding='utf-8') as f:
    [doc] = [d for d in yaml.safe_load_all(f) if d]
  return doc


def test_inference_service_on_object_storage(tmp_path):
  doc = _inference_service(tmp_path, SETTINGS)
  assert doc['apiVersion'] == 'serving.kserve.io/v1beta1'
  assert doc['kind'] == 'InferenceService'
  assert doc['metadata']['name'] == 'mnist'
  tensorflow = doc['spec']['predictor']['tensorflow']
  # The folder of numbered versions, which is what the Pusher writes and what
  # TF Serving's --model_base_path (KServe mounts it at /mnt/models) wants.
  assert tensorflow['storageUri'] == 'gs://mnist-test/serving/mnist'
  assert tensorflow['storageUri'] == manifests.model_base_path(config_with(SETTINGS))
  # The same TF Serving as the Deployment in serving.yaml.
  assert manifests.tf_serving_image() == (
      f'tensorflow/serving:{tensorflow["runtimeVersion"]}')
  assert tensorflow['resources']['limits']['memory'] == '2Gi'


def test_inference_service_on_the_volume_claim(tmp_path):
  doc = _inference_service(tmp_path, VOLUME_SETTINGS)
  assert doc['spec']['predictor']['tensorflow']['storageUri'] == (
      'pvc://mnist-tfx-data/serving/mnist')


def test_a_local_serving_root_cannot_be_served_by_kserve():
  config = config_with(SETTINGS[:1] + ['kubeflow.serving_root=/somewhere/local'])
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
  doc = copy.deepcopy(manifests.render_inference_service(config_with(SETTINGS)))
  mutate(doc)
  with pytest.raises(manifests.ManifestError, match=error):
    manifests.validate_inference_service(doc)

