"""The manifests `mnist-tfx compile` writes beside the pipeline spec, checked field
by field against the Kubernetes API models: TF Serving's Deployment and Service
(kubeflow/serving.yaml rendered by kubeflow/manifests.py), a KServe
InferenceService (tensorflow predictor, storageUri at the Pusher's model base path,
the same TF Serving version), and with the Beam steps on Flink, a Flink session
cluster and Beam's job server at the addresses the steps submit to
(kubeflow/flink.yaml rendered by kubeflow/flink.py).
"""

import copy
import os
import re

from click.testing import CliRunner
import pytest
import yaml

from kubeflow import flink
from kubeflow import manifests
from pipeline import config as config_lib
from pipeline.cli import main as cli
from serving.model_servers import options as serving_options
from serving.servables import batching
from tests.testutil.kubeflow_specs import FLINK_SETTINGS
from tests.testutil.kubeflow_specs import IMAGE
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
  # The ports the local server and its clients use (serving/model_servers/
  # options.py).
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



# --- The Beam steps' Flink session cluster ----------------------------------

DOCKERFILE = os.path.join(config_lib.REPO_ROOT, 'kubeflow', 'Dockerfile')


def _validate_all(docs):
  for doc in docs:
    if doc['kind'] == flink.KIND:
      flink.validate_flink_deployment(doc)
    else:
      manifests.validate(doc)


def _job_server(docs):
  pod = only(docs, 'Deployment')['spec']['template']['spec']
  (container,) = [c for c in pod['containers']
                  if c['name'] == flink.JOB_SERVER_CONTAINER]
  return container


def _task_manager_pod(docs):
  return only(docs, flink.KIND)['spec']['taskManager']['podTemplate']['spec']


def _task_manager_container(docs, name):
  (container,) = [c for c in _task_manager_pod(docs)['containers']
                  if c['name'] == name]
  return container


def _flags(args):
  return dict(arg.split('=', 1) for arg in args if '=' in arg)


def _beam_pin(path):
  with open(path, encoding='utf-8') as f:
    return re.search(r'^apache-beam(?:\[\w,]+\])?==(\S+)$', f.read(), re.M)[1]


def test_flink_template_parses_as_its_kinds():
  docs = manifests.load(flink.TEMPLATE)
  assert sorted(doc['kind'] for doc in docs) == ['Deployment', flink.KIND,
                                                 'Service']
  _validate_all(docs)


def test_flink_manifests_answer_where_the_beam_steps_submit(compiled_flink):
  docs = compiled_flink.flink
  assert docs, 'compile wrote no kubeflow-flink.yaml'
  _validate_all(docs)
  # What every Beam step of the compiled spec passes.
  (step_args,) = {tuple(a) for a in compiled_flink.beam_args().values()}
  steps = _flags(step_args)
  # The job server's Service and its container, at --job_endpoint.
  host, port = steps['--job_endpoint'].rsplit(':', 1)
  assert (host, port) == ('mnist-tfx-flink-job-server', '8099')
  service = only(docs, 'Service')
  assert service['metadata']['name'] == host
  server = _job_server(docs)
  server_flags = _flags(server['args'])
  container_ports = {p['name']: p['containerPort'] for p in server['ports']}
  assert server_flags['--job-port'] == port
  assert {p['port']: container_ports[p['targetPort']]
          for p in service['spec']['ports']}[int(port)] == int(port)
  for name, flag in flink.PORT_FLAGS.items():
    assert container_ports[name] == int(server_flags[flag]), name
  pod_labels = only(docs, 'Deployment')['spec']['template']['metadata']['labels']
  assert service['spec']['selector'].items() <= pod_labels.items()
  # Each task manager's own worker pool, at --environment_config.
  assert steps['--environment_type'] == 'EXTERNAL'
  pool_host, pool_port = steps['--environment_config'].rsplit(':', 1)
  assert pool_host == 'localhost'
  pool = _task_manager_container(docs, flink.WORKER_POOL_CONTAINER)
  assert [p['containerPort'] for p in pool['ports']] == [int(pool_port)]
  assert pool['image'] == IMAGE
  _task_manager_container(docs, flink.MAIN_CONTAINER)  # merged with Flink's
  # The pool is the image's entrypoint, Beam's boot, in its worker pool mode,
  # which serves on 50000.
  with open(DOCKERFILE, encoding='utf-8') as f:
    assert re.findall(r'^ENTRYPOINT (.*)$', f.read(), re.M) == [
        '["/opt/apache/beam/boot"]']
  assert pool['args'] == ['--worker_pool'] and 'command' not in pool
  assert pool_port == '50000'
  # The job server submits to the operator's REST Service of this cluster, a
  # session cluster (no job of its own) with the steps' parallelism.
  cluster = only(docs, flink.KIND)
  conf = cluster['spec']['flinkConfiguration']
  assert server_flags['--flink-master'] == (
      f'{cluster["metadata"]["name"]}-rest:{conf["rest.port"]}')
  assert 'job' not in cluster['spec']
  assert conf['parallelism.default'] == steps['--parallelism'] == '3'
  assert int(conf['taskmanager.numberOfTaskSlots']) >= 1
  # The job server's address is one other pods reach (it hands the submitting
  # step <job-host>:<artifact-port> for staging).
  assert server_flags['--job-host'] == '$(POD_IP)'
  assert {'name': 'POD_IP', 'valueFrom': {'fieldRef': {
      'fieldPath': 'status.podIP'}}} in server['env']


def test_flink_and_beam_versions_agree(compiled_flink):
  cluster = only(compiled_flink.flink, flink.KIND)
  minor = cluster['spec']['flinkVersion'][1:].replace('_', '.')
  assert cluster['spec']['image'] == f'flink:{minor}'
  image, beam_version = _job_server(compiled_flink.flink)['image'].rsplit(':', 1)
  assert image == f'apache/beam_flink{minor}_job_server'
  # The Beam of the pipeline image (requirements.lock) and of its boot.
  assert beam_version == _beam_pin(os.path.join(config_lib.REPO_ROOT,
                                                'requirements.lock'))
  with open(DOCKERFILE, encoding='utf-8') as f:
    assert re.search(r'^ARG BEAM_SDK_IMAGE=apache/beam_python3\.\d+_sdk:(\S+)$',
                     f.read(), re.M)[1] == beam_version


def test_flink_names_and_ports_follow_the_settings():
  docs = flink.render(config_with(FLINK_SETTINGS + [
      'kubeflow.beam.job_endpoint=beam-flink.jobs.svc.cluster.local:9099',
      'pipeline_name=digits']))
  _validate_all(docs)
  service, deployment = only(docs, 'Service'), only(docs, 'Deployment')
  assert service['metadata']['name'] == deployment['metadata']['name'] == (
      'beam-flink')
  assert [p['port'] for p in service['spec']['ports'] if p['name'] == 'job'] == [
      9099]
  server = _job_server(docs)
  assert '--job-port=9099' in server['args']
  assert '--flink-master=digits-flink-rest:8081' in server['args']
  assert only(docs, flink.KIND)['metadata']['name'] == 'digits-flink'


def test_flink_artifacts_are_where_job_server_and_task_managers_both_read(
    compiled_flink):
  assert '--artifacts-dir=gs://mnist-test/root/beam-artifacts' in _job_server(
      compiled_flink.flink)['args']
  docs = flink.render(config_with(VOLUME_SETTINGS + ['kubeflow.beam.runner=flink']))
  _validate_all(docs)
  assert '--artifacts-dir=/mnt/mnist/beam-artifacts' in _job_server(docs)['args']
  claim = {'name': flink.VOLUME,
           'persistentVolumeClaim': {'claimName': 'mnist-tfx-data'}}
  mount = {'name': flink.VOLUME, 'mountPath': '/mnt/mnist'}
  pods = [_task_manager_pod(docs),
          only(docs, 'Deployment')['spec']['template']['spec']]
  for pod in pods:
    assert claim in pod['volumes']
  # The job server writes the artifacts, Flink reads them, the SDK workers read
  # the data (kubeflow.data_dir is on the claim).
  for container in (_job_server(docs),
                    _task_manager_container(docs, flink.MAIN_CONTAINER),
                    _task_manager_container(docs, flink.WORKER_POOL_CONTAINER)):
    assert mount in container['volumeMounts'], container['name']


@pytest.mark.parametrize('settings, error', [
    (['kubeflow.beam.worker_pool=localhost:50001'], 'localhost:50000'),
    (['kubeflow.beam.worker_pool=beam-worker-pool:50000'], 'localhost:50000'),
    (['kubeflow.beam.job_endpoint=10.0.0.7:8099'], 'no Service name'),
    (['kubeflow.beam.job_endpoint=mnist-tfx-flink-job-server'], 'HOST:PORT'),
    (['kubeflow.pipeline_root=s3://mnist-test/root'], 'gs:// and local paths'),
])
def test_flink_settings_the_manifests_cannot_answer_are_refused(settings, error):
  with pytest.raises(manifests.ManifestError, match=error):
    flink.render(config_with(FLINK_SETTINGS + settings))


def test_compile_refuses_them_before_writing(tmp_path):
  result = CliRunner().invoke(cli.main, [
      'compile', '--output', str(tmp_path / 'p.yaml')] + [
          arg for setting in FLINK_SETTINGS + [
              'kubeflow.beam.worker_pool=localhost:50001']
          for arg in ('--set', setting)])
  assert result.exit_code == 2, result.output
  assert 'kubeflow.beam.worker_pool' in result.output
  assert not os.listdir(tmp_path)


def _task_manager_pool(doc):
  return doc['spec']['taskManager']['podTemplate']['spec']['containers'][1]


@pytest.mark.parametrize('mutate, error', [
    (lambda d: d.update(apiVersion='flink.apache.org/v1'),
     'expected flink.apache.org/v1beta1'),
    (lambda d: d['spec'].update(flinkConfig={}), r'spec\.flinkConfig: not a field'),
    (lambda d: d['spec'].update(flinkVersion='1.19'), 'flinkVersion'),
    (lambda d: d['spec'].update(mode='session'), r'spec\.mode'),
    (lambda d: d['spec']['flinkConfiguration'].update(
        {'taskmanager.numberOfTaskSlots': 2}), 'numberOfTaskSlots: 2 is not'),
    (lambda d: d['spec']['taskManager']['resource'].update(memroy='1g'),
     r'taskManager\.resource\.memroy: not a field'),
    (lambda d: d['spec']['jobManager']['resource'].update(cpu='one'),
     r'jobManager\.resource\.cpu'),
    (lambda d: d['spec']['taskManager'].update(replica=2),
     r'taskManager\.replica: not a field'),
    (lambda d: d['spec'].update(job={'jarUri': 'local:///job.jar'}),
     r'job\.jarUri: not a field'),
    (lambda d: _task_manager_pool(d).update(imag='x'), 'imag: not a field'),
    (lambda d: _task_manager_pool(d)['ports'][0].update(containerPort='50000'),
     'containerPort'),
    (lambda d: d['spec']['taskManager']['podTemplate'].update(kind='Deployment'),
     'expected a v1 Pod'),
    (lambda d: d['metadata'].update(label={'a': 'b'}), r'metadata\.label'),
])
def test_flink_deployment_validation_catches_misspelt_fields(mutate, error):
  doc = copy.deepcopy(only(flink.render(config_with(FLINK_SETTINGS)), flink.KIND))
  flink.validate_flink_deployment(doc)
  mutate(doc)
  with pytest.raises(manifests.ManifestError, match=error):
    flink.validate_flink_deployment(doc)
