"""A Flink session cluster for the Beam steps (kubeflow/flink.yaml), rendered for a
config whose kubeflow.beam.runner is `flink`.

The compiled spec's Beam steps submit to kubeflow.beam.job_endpoint with
`--environment_type=EXTERNAL --environment_config=<kubeflow.beam.worker_pool>`
(BeamConfig.pipeline_args, the arguments of the local Flink runs). `render` makes
the manifests answer at exactly those addresses:
- the job server's Service is the host of job_endpoint, on its port, and the job
  server listens there;
- every task manager pod has the pipeline image as a sidecar serving Beam's worker
  pool on localhost, at the port of worker_pool;
- the job server submits to the REST Service the Flink Kubernetes Operator makes
  for the FlinkDeployment (<name>-rest, on the configuration's rest.port);
- staged artifacts go where both the job server and the task managers read: the
  volume claim when there is one, else the pipeline root's bucket.
The core kinds are checked with manifests.validate; the FlinkDeployment, which the
kubernetes client has no model for, by validate_flink_deployment.
"""

import copy
import os
import posixpath
import re
from typing import Any, Dict, List, Tuple

from kubeflow import manifests
from pipeline import config as config_lib

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'flink.yaml')
GROUP_VERSION = 'flink.apache.org/v1beta1'
KIND = 'FlinkDeployment'
# The container the operator fills in with Flink; a pod template's container of
# this name is merged into it.
MAIN_CONTAINER = 'flink-main-container'
WORKER_POOL_CONTAINER = 'beam-worker-pool'
JOB_SERVER_CONTAINER = 'beam-job-server'
# The pipeline image's entrypoint is Beam's SDK harness boot (kubeflow/Dockerfile);
# with --worker_pool it serves the worker pool on this port, which it does not let
# one change.
BOOT_WORKER_POOL_PORT = 50000
SIDECAR_HOSTS = ('localhost', '127.0.0.1')
ARTIFACTS = 'beam-artifacts'
VOLUME = 'pipeline-data'
# The job server's port flags, by the names of its container's and Service's ports.
PORT_FLAGS = {'job': '--job-port', 'artifact': '--artifact-port',
              'expansion': '--expansion-port'}
# A Service's name (RFC 1035 label).
_SERVICE_NAME = re.compile(r'^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')

# The operator's flinkVersion values (FlinkVersion) and deployment modes.
FLINK_VERSIONS = ('v1_15', 'v1_16', 'v1_17', 'v1_18', 'v1_19', 'v1_20', 'v2_0')
MODES = ('native', 'standalone')
# The fields of the operator's v1beta1 types, with the type of each value:
# FlinkDeploymentSpec, JobManagerSpec and TaskManagerSpec, Resource, JobSpec,
# IngressSpec.
_SPEC_FIELDS = {
    'image': str, 'imagePullPolicy': str, 'serviceAccount': str,
    'flinkVersion': str, 'mode': str, 'restartNonce': int,
    'flinkConfiguration': dict, 'logConfiguration': dict, 'podTemplate': dict,
    'jobManager': dict, 'taskManager': dict, 'job': dict, 'ingress': dict,
}
_PROCESS_FIELDS = {'resource': dict, 'replicas': int, 'podTemplate': dict}
_RESOURCE_FIELDS = {'cpu': (int, float), 'memory': str, 'ephemeralStorage': str}
_JOB_FIELDS = {
    'jarURI': str, 'parallelism': int, 'entryClass': str, 'args': list,
    'state': str, 'upgradeMode': str, 'initialSavepointPath': str,
    'allowNonRestoredState': bool, 'savepointTriggerNonce': int,
    'checkpointTriggerNonce': int, 'savepointRedeployNonce': int,
}
_INGRESS_FIELDS = {'template': str, 'className': str, 'annotations': dict,
                   'labels': dict}

Manifest = manifests.Manifest


def cluster_name(config: config_lib.PipelineConfig) -> str:
  return f'{config.pipeline_name}-flink'


def job_server_address(config: config_lib.PipelineConfig) -> Tuple[str, int]:
  """The job server's Service name and port, from kubeflow.beam.job_endpoint
  (<service>[.<namespace>...]:<port>)."""
  endpoint = config.kubeflow.beam.job_endpoint
  host, port = _host_port(endpoint, 'kubeflow.beam.job_endpoint')
  name = host.split('.', 1)[0]
  if not _SERVICE_NAME.match(name):
    raise manifests.ManifestError(
        f'kubeflow.beam.job_endpoint={endpoint!r}: the Flink manifests create the '
        f'job server as the Service its host names, and {name!r} is no Service '
        'name (lowercase letters, digits and "-", from a letter)')
  return name, port


def worker_pool_port(config: config_lib.PipelineConfig) -> int:
  """The port of kubeflow.beam.worker_pool, which must be the sidecar's."""
  address = config.kubeflow.beam.worker_pool
  host, port = _host_port(address, 'kubeflow.beam.worker_pool')
  if host not in SIDECAR_HOSTS or port != BOOT_WORKER_POOL_PORT:
    raise manifests.ManifestError(
        f'kubeflow.beam.worker_pool={address!r}: each task manager reaches the '
        'worker pool of its own pod, which the pipeline image serves on '
        f'localhost:{BOOT_WORKER_POOL_PORT} (its entrypoint with --worker_pool)')
  return port


def artifacts_dir(config: config_lib.PipelineConfig) -> str:
  """Where the job server stages artifacts and the task managers read them."""
  kf = config.kubeflow
  if kf.volume_claim:
    return posixpath.join(kf.volume_mount_path, ARTIFACTS)
  if kf.pipeline_root.startswith('gs://'):
    return posixpath.join(kf.pipeline_root, ARTIFACTS)
  raise manifests.ManifestError(
      f'kubeflow.pipeline_root={kf.pipeline_root!r}: Beam\'s Flink job server '
      'stages artifacts with the file systems of its image, which know gs:// and '
      'local paths only; set kubeflow.volume_claim for a folder on the volume')


def render(config: config_lib.PipelineConfig,
           template: str = TEMPLATE) -> List[Manifest]:
  """The FlinkDeployment, the job server's Deployment and its Service, at the
  addresses config.kubeflow.beam gives the Beam steps."""
  kf = config.kubeflow
  job_server, job_port = job_server_address(config)
  pool_port = worker_pool_port(config)
  storage = artifacts_dir(config)
  docs = manifests.load(template)

  cluster = manifests.only(docs, KIND)
  name = cluster_name(config)
  cluster['metadata'] = {'name': name, 'labels': {'app': name}}
  flink_conf = cluster['spec']['flinkConfiguration']
  flink_conf['parallelism.default'] = str(kf.beam.parallelism)
  task_manager = cluster['spec']['taskManager']['podTemplate']['spec']
  pool = _container(task_manager, WORKER_POOL_CONTAINER)
  pool['image'] = kf.image
  (pool_port_spec,) = pool['ports']
  pool_port_spec['containerPort'] = pool_port

  deployment = manifests.only(docs, 'Deployment')
  service = manifests.only(docs, 'Service')
  labels = {'app': job_server}
  for doc in (deployment, service):
    doc['metadata'] = {'name': job_server, 'labels': dict(labels)}
  deployment['spec']['selector']['matchLabels'] = dict(labels)
  deployment['spec']['template']['metadata']['labels'] = dict(labels)
  service['spec']['selector'] = dict(labels)
  server_pod = deployment['spec']['template']['spec']
  server = _container(server_pod, JOB_SERVER_CONTAINER)
  server['args'] = [
      manifests.replace_flag(arg, {
          '--flink-master': f'{name}-rest:{flink_conf["rest.port"]}',
          '--job-port': str(job_port),
          '--artifacts-dir': storage})
      for arg in server['args']]
  flags = _flags(server['args'])
  for port in server['ports']:
    port['containerPort'] = int(flags[PORT_FLAGS[port['name']]])
  for port in service['spec']['ports']:
    port['port'] = int(flags[PORT_FLAGS[port['name']]])

  if kf.volume_claim:
    volume = {'name': VOLUME,
              'persistentVolumeClaim': {'claimName': kf.volume_claim}}
    mount = {'name': VOLUME, 'mountPath': kf.volume_mount_path}
    # The job server writes the artifacts, the task managers read them, and the
    # SDK workers read the data (and whatever else the steps keep there).
    for pod, containers in (
        (server_pod, [server]),
        (task_manager, [_container(task_manager, MAIN_CONTAINER), pool])):
      pod.setdefault('volumes', []).append(copy.deepcopy(volume))
      for container in containers:
        container.setdefault('volumeMounts', []).append(dict(mount))

  validate_flink_deployment(cluster)
  manifests.validate(deployment)
  manifests.validate(service)
  return docs


def validate_flink_deployment(doc: Manifest) -> None:
  """Checks a FlinkDeployment against the fields of the Flink Kubernetes
  Operator's v1beta1 types, and its pod templates as Kubernetes Pods; raises
  manifests.ManifestError naming every misspelt, misplaced or mistyped field."""
  where = f'{KIND} {manifests.name_of(doc)}'
  if doc.get('apiVersion') != GROUP_VERSION or doc.get('kind') != KIND:
    raise manifests.ManifestError(f'{where}: expected {GROUP_VERSION} {KIND}')
  problems: List[str] = []
  _check_fields(doc, {'apiVersion': str, 'kind': str, 'metadata': dict,
                      'spec': dict}, where, problems)
  try:
    manifests.check_model(doc.get('metadata') or {}, 'V1ObjectMeta',
                          f'{where}.metadata')
  except manifests.ManifestError as e:
    problems.append(str(e))
  spec = doc.get('spec') or {}
  where += '.spec'
  _check_fields(spec, _SPEC_FIELDS, where, problems)
  if spec.get('flinkVersion') not in FLINK_VERSIONS:
    problems.append(f'{where}.flinkVersion: {spec.get("flinkVersion")!r} is not '
                    f'one of {", ".join(FLINK_VERSIONS)}')
  if 'mode' in spec and spec['mode'] not in MODES:
    problems.append(f'{where}.mode: {spec["mode"]!r} is not one of '
                    f'{", ".join(MODES)}')
  for field in ('flinkConfiguration', 'logConfiguration'):
    for key, value in (spec.get(field) or {}).items():
      if not (isinstance(key, str) and isinstance(value, str)):
        problems.append(f'{where}.{field}.{key}: {value!r} is not a string')
  templates = {'podTemplate': spec.get('podTemplate')}
  for process in ('jobManager', 'taskManager'):
    part = spec.get(process) or {}
    _check_fields(part, _PROCESS_FIELDS, f'{where}.{process}', problems)
    _check_fields(part.get('resource') or {}, _RESOURCE_FIELDS,
                  f'{where}.{process}.resource', problems)
    templates[f'{process}.podTemplate'] = part.get('podTemplate')
  _check_fields(spec.get('job') or {}, _JOB_FIELDS, f'{where}.job', problems)
  _check_fields(spec.get('ingress') or {}, _INGRESS_FIELDS, f'{where}.ingress',
                problems)
  for path, pod in templates.items():
    if not isinstance(pod, dict):
      continue
    if (pod.get('apiVersion'), pod.get('kind')) not in ((None, None), ('v1', 'Pod')):
      problems.append(f'{where}.{path}: expected a v1 Pod')
      continue
    try:
      manifests.check_model(pod, 'V1Pod', f'{where}.{path}')
    except manifests.ManifestError as e:
      problems.append(str(e))
  if problems:
    raise manifests.ManifestError('; '.join(problems))


def _check_fields(part: Dict[str, Any], fields: Dict[str, Any], where: str,
                  problems: List[str]) -> None:
  for key, value in part.items():
    if key not in fields:
      problems.append(f'{where}.{key}: not a field of this object')
      continue
    expected = fields[key]
    # YAML's true and false are Python ints too; only a boolean field takes them.
    if not isinstance(value, expected) or (
        isinstance(value, bool) and expected is not bool):
      problems.append(f'{where}.{key}: {value!r} is not of the field\'s type')


def _host_port(address: str, setting: str) -> Tuple[str, int]:
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise manifests.ManifestError(f'{setting}={address!r}: expected HOST:PORT')
  return host, int(port)


def _container(pod: Dict[str, Any], name: str) -> Dict[str, Any]:
  found = [c for c in pod.get('containers', []) if c.get('name') == name]
  if len(found) != 1:
    raise manifests.ManifestError(f'expected one container {name!r} in the '
                                  f'pod, found {len(found)}')
  return found[0]


def _flags(args: List[str]) -> Dict[str, str]:
  return dict(arg.split('=', 1) for arg in args if '=' in arg)
