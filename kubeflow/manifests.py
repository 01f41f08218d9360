"""TF Serving's Kubernetes manifests (kubeflow/serving.yaml), rendered for a config.

The checked-in manifests name the model `mnist` under /models; `render` points them at
the model base path the compiled pipeline's Pusher writes to (kubeflow.serving_root
/<model_name>), mounts the volume claim when that path is on one, opens the ports
the local server and its clients use (serving/model_servers/options.py) and fills
in the batching parameters the local server uses (serving/batching_parameters.txt).
Every document is checked against the Kubernetes API models of the `kubernetes`
client, so a misspelt or misplaced field fails instead of being dropped by the API
server.
"""

import copy
import json
import os
import posixpath
from typing import Any, Dict, List

import yaml

from pipeline import config as config_lib
from serving.model_servers import options as serving_options

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'serving.yaml')
# TF Serving's batching parameters, shared with the local server.
BATCHING_PARAMETERS = os.path.join(config_lib.REPO_ROOT, 'serving',
                                   'batching_parameters.txt')
BATCHING_KEY = 'batching_parameters.txt'
CONTAINER = 'tensorflow-serving'
KSERVE_GROUP = 'serving.kserve.io'
# KServe's PredictorExtensionSpec fields beside the embedded Container's.
_PREDICTOR_EXTENSION = ('storageUri', 'runtimeVersion', 'protocolVersion')
MODEL_VOLUME = 'models'
# TF Serving's gRPC port and the REST port of its Docker image, by the names of the
# container's ports in serving.yaml.
PORTS = {'grpc': serving_options.ServerOptions.port,
         'http': serving_options.DOCKER_REST_API_PORT}

Manifest = Dict[str, Any]


class ManifestError(ValueError):
  """A manifest does not match the Kubernetes API; the message says where."""


def load(path: str = TEMPLATE) -> List[Manifest]:
  with open(path, encoding='utf-8') as f:
    return [doc for doc in yaml.safe_load_all(f) if doc]


def tf_serving_image(template: str = TEMPLATE) -> str:
  """The tensorflow/serving image the manifests run (one home: serving.yaml)."""
  deployment = only(load(template), 'Deployment')
  containers = deployment['spec']['template']['spec']['containers']
  return next(c for c in containers if c['name'] == CONTAINER)['image']


def model_base_path(config: config_lib.PipelineConfig) -> str:
  """Where the Pusher pushes on the cluster (see pipeline.create_pipeline)."""
  return posixpath.join(config.kubeflow.serving_root, config.model_name)


def render(config: config_lib.PipelineConfig,
           template: str = TEMPLATE) -> List[Manifest]:
  """The manifests serving config.model_name from model_base_path(config)."""
  kf = config.kubeflow
  docs = copy.deepcopy(load(template))
  deployment = only(docs, 'Deployment')
  pod = deployment['spec']['template']['spec']
  container = next(c for c in pod['containers'] if c['name'] == CONTAINER)
  base_path = model_base_path(config)
  container['args'] = [
      replace_flag(arg, {'--model_name': config.model_name,
                         '--model_base_path': base_path,
                         '--port': str(PORTS['grpc']),
                         '--rest_api_port': str(PORTS['http'])})
      for arg in container['args']
  ]
  for port in container['ports']:
    port['containerPort'] = PORTS[port['name']]
  for port in only(docs, 'Service')['spec']['ports']:
    port['port'] = PORTS[port['name']]
  container['readinessProbe']['httpGet']['path'] = (
      f'/v1/models/{config.model_name}')
  with open(BATCHING_PARAMETERS, encoding='utf-8') as f:
    only(docs, 'ConfigMap')['data'][BATCHING_KEY] = f.read()
  if kf.volume_claim and base_path.startswith(
      kf.volume_mount_path.rstrip('/') + '/'):
    pod.setdefault('volumes', []).append({
        'name': MODEL_VOLUME,
        'persistentVolumeClaim': {'claimName': kf.volume_claim,
                                  'readOnly': True},
    })
    container.setdefault('volumeMounts', []).append({
        'name': MODEL_VOLUME, 'mountPath': kf.volume_mount_path,
        'readOnly': True})
  for doc in docs:
    validate(doc)
  return docs


def storage_uri(config: config_lib.PipelineConfig) -> str:
  """model_base_path(config) as a KServe storageUri: object storage as it is, a
  path on the volume claim as pvc://<claim>/<path inside the claim>."""
  kf = config.kubeflow
  base_path = model_base_path(config)
  mount = kf.volume_mount_path.rstrip('/') + '/'
  if kf.volume_claim and base_path.startswith(mount):
    return f'pvc://{kf.volume_claim}/{base_path[len(mount):]}'
  if '://' not in base_path:
    raise ManifestError(
        f'KServe cannot read {base_path}: set kubeflow.serving_root to object '
        'storage (gs://, s3://) or to a path under kubeflow.volume_mount_path '
        'with kubeflow.volume_claim')
  return base_path


def render_inference_service(config: config_lib.PipelineConfig,
                             template: str = TEMPLATE) -> Manifest:
  """A KServe InferenceService (v1beta1) with the tensorflow predictor serving
  the Pusher's model base path: KServe's TF Serving runtime mounts storageUri at
  /mnt/models and runs tensorflow_model_server with --model_base_path on it, so
  the URI is the folder of numbered versions. Same TF Serving version and
  resources as the Deployment in serving.yaml."""
  deployment = only(load(template), 'Deployment')
  container = next(c for c in deployment['spec']['template']['spec']['containers']
                   if c['name'] == CONTAINER)
  doc = {
      'apiVersion': f'{KSERVE_GROUP}/v1beta1',
      'kind': 'InferenceService',
      'metadata': {'name': config.model_name,
                   'labels': {'app': f'{config.model_name}-serving'}},
      'spec': {'predictor': {'tensorflow': {
          'storageUri': storage_uri(config),
          'runtimeVersion': tf_serving_image(template).rsplit(':', 1)[1],
          'resources': copy.deepcopy(container['resources']),
      }}},
  }
  validate_inference_service(doc)
  return doc


def validate_inference_service(doc: Manifest) -> None:
  """Checks an InferenceService the way validate() checks core kinds, as far as
  the kubernetes client's models reach: KServe's v1beta1 types embed them
  (metadata is an ObjectMeta; the predictor's framework spec is a Container plus
  storageUri, runtimeVersion and protocolVersion, strings)."""
  where = f'InferenceService {name_of(doc)}'
  if doc.get('apiVersion') != f'{KSERVE_GROUP}/v1beta1' or (
      doc.get('kind') != 'InferenceService'):
    raise ManifestError(f'{where}: expected {KSERVE_GROUP}/v1beta1 '
                        'InferenceService')
  unknown = set(doc) - {'apiVersion', 'kind', 'metadata', 'spec'}
  if unknown or set(doc.get('spec', {})) - {'predictor'}:
    raise ManifestError(f'{where}: unexpected fields {sorted(unknown)}')
  check_model(doc['metadata'], 'V1ObjectMeta', f'{where}.metadata')
  predictor = doc['spec'].get('predictor') or {}
  if list(predictor) != ['tensorflow']:
    raise ManifestError(f'{where}.spec.predictor: expected only tensorflow')
  framework = dict(predictor['tensorflow'])
  for key in _PREDICTOR_EXTENSION:
    if key in framework and not isinstance(framework.pop(key), str):
      raise ManifestError(f'{where}.spec.predictor.tensorflow.{key}: not a string')
  if not predictor['tensorflow'].get('storageUri'):
    raise ManifestError(f'{where}.spec.predictor.tensorflow.storageUri: missing')
  check_model({'name': 'kserve-container', **framework}, 'V1Container',
              f'{where}.spec.predictor.tensorflow')


def check_model(part: Manifest, model_name: str, where: str) -> Any:
  """Parses `part` into the kubernetes client model `model_name`; raises
  ManifestError if the model cannot hold it all (unknown or misplaced fields,
  wrong types, missing required fields). Returns the model."""
  # pylint: disable=g-import-not-at-top
  import kubernetes
  client = kubernetes.client.ApiClient()

  class _Response:  # what ApiClient.deserialize reads
    data = json.dumps(part)

  try:
    model = client.deserialize(_Response(), model_name)
  except (ValueError, TypeError) as e:
    raise ManifestError(f'{where}: {e}') from e
  # The client drops what its model has no attribute for; anything lost on the
  # way back is a field Kubernetes would not know either.
  differences = _differences(part, client.sanitize_for_serialization(model),
                             where)
  if differences:
    raise ManifestError('; '.join(differences))
  return model


def write(docs: List[Manifest], path: str,
          source: str = 'kubeflow/serving.yaml', what: str = 'TF Serving') -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(f'# {what} for the compiled pipeline; rendered by `mnist-tfx '
            f'compile` from {source}.\n')
    yaml.dump_all(docs, f, Dumper=_Dumper, sort_keys=False)


class _Dumper(yaml.SafeDumper):
  """Writes multi-line strings (the batching parameters) as literal blocks."""

  def represent_str(self, data):
    style = '|' if '\n' in data else None
    return self.represent_scalar('tag:yaml.org,2002:str', data, style=style)


_Dumper.add_representer(str, _Dumper.represent_str)


def validate(doc: Manifest) -> Any:
  """Parses `doc` into its kubernetes client model; raises ManifestError if the
  model cannot hold it all (unknown or misplaced fields, wrong types, missing
  required fields). Returns the model."""
  # pylint: disable=g-import-not-at-top
  import kubernetes
  api_version, kind = doc.get('apiVersion', ''), doc.get('kind', '')
  model_name = api_version.split('/')[-1].capitalize() + kind
  if not hasattr(kubernetes.client, model_name):
    raise ManifestError(f'{api_version} {kind}: no such Kubernetes API model '
                        f'({model_name})')
  return check_model(doc, model_name, f'{kind} {name_of(doc)}')


def _differences(original: Any, parsed: Any, where: str) -> List[str]:
  if isinstance(original, dict):
    if not isinstance(parsed, dict):
      return [f'{where}: expected {type(parsed).__name__}, found a mapping']
    found = []
    for key, value in original.items():
      if key not in parsed:
        found.append(f'{where}.{key}: not a field of this object')
      else:
        found += _differences(value, parsed[key], f'{where}.{key}')
    return found
  if isinstance(original, list):
    if not isinstance(parsed, list) or len(parsed) != len(original):
      return [f'{where}: expected a list']
    found = []
    for i, (a, b) in enumerate(zip(original, parsed)):
      found += _differences(a, b, f'{where}[{i}]')
    return found
  if original != parsed or type(original) is not type(parsed):
    return [f'{where}: {original!r} is not of the field\'s type '
            f'(read as {parsed!r})']
  return []


def replace_flag(arg: str, values: Dict[str, str]) -> str:
  flag = arg.split('=', 1)[0]
  return f'{flag}={values[flag]}' if flag in values else arg


def only(docs: List[Manifest], kind: str) -> Manifest:
  found = [doc for doc in docs if doc.get('kind') == kind]
  if len(found) != 1:
    raise ManifestError(f'expected one {kind} in the manifests, found {len(found)}')
  return found[0]


def name_of(doc: Manifest) -> str:
  return (doc.get('metadata') or {}).get('name', '?')
