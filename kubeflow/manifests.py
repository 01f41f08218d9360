"""TF Serving's Kubernetes manifests (kubeflow/serving.yaml), rendered for a config.

The checked-in manifests name the model `mnist` under /models; `render` points them at
the model base path the compiled pipeline's Pusher writes to (kubeflow.serving_root
/<model_name>), mounts the volume claim when that path is on one, and fills in the
batching parameters the local server uses (serving/batching_parameters.txt). Every
document is checked against the Kubernetes API models of the `kubernetes` client, so
a misspelt or misplaced field fails instead of being dropped by the API server.
"""

import copy
import json
import os
import posixpath
from typing import Any, Dict, List

import yaml

from pipeline import config as config_lib

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'serving.yaml')
# TF Serving's batching parameters, shared with the local server.
BATCHING_PARAMETERS = os.path.join(config_lib.REPO_ROOT, 'serving',
                                   'batching_parameters.txt')
BATCHING_KEY = 'batching_parameters.txt'
CONTAINER = 'tensorflow-serving'
MODEL_VOLUME = 'models'

Manifest = Dict[str, Any]


class ManifestError(ValueError):
  """A manifest does not match the Kubernetes API; the message says where."""


def load(path: str = TEMPLATE) -> List[Manifest]:
  with open(path, encoding='utf-8') as f:
    return [doc for doc in yaml.safe_load_all(f) if doc]


def model_base_path(config: config_lib.PipelineConfig) -> str:
  """Where the Pusher pushes on the cluster (see pipeline.create_pipeline)."""
  return posixpath.join(config.kubeflow.serving_root, config.model_name)


def render(config: config_lib.PipelineConfig,
           template: str = TEMPLATE) -> List[Manifest]:
  """The manifests serving config.model_name from model_base_path(config)."""
  kf = config.kubeflow
  docs = copy.deepcopy(load(template))
  deployment = _only(docs, 'Deployment')
  pod = deployment['spec']['template']['spec']
  container = next(c for c in pod['containers'] if c['name'] == CONTAINER)
  base_path = model_base_path(config)
  container['args'] = [
      _replace_flag(arg, {'--model_name': config.model_name,
                          '--model_base_path': base_path})
      for arg in container['args']
  ]
  container['readinessProbe']['httpGet']['path'] = (
      f'/v1/models/{config.model_name}')
  with open(BATCHING_PARAMETERS, encoding='utf-8') as f:
    _only(docs, 'ConfigMap')['data'][BATCHING_KEY] = f.read()
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


def write(docs: List[Manifest], path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write('# TF Serving for the compiled pipeline; rendered by `mnist-tfx '
            'compile` from kubeflow/serving.yaml.\n')
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
  client = kubernetes.client.ApiClient()

  class _Response:  # what ApiClient.deserialize reads
    data = json.dumps(doc)

  try:
    model = client.deserialize(_Response(), model_name)
  except (ValueError, TypeError) as e:
    raise ManifestError(f'{kind} {_name(doc)}: {e}') from e
  # The client drops what its model has no attribute for; anything lost on the
  # way back is a field Kubernetes would not know either.
  back = client.sanitize_for_serialization(model)
  differences = _differences(doc, back, kind)
  if differences:
    raise ManifestError(f'{kind} {_name(doc)}: ' + '; '.join(differences))
  return model


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


def _replace_flag(arg: str, values: Dict[str, str]) -> str:
  flag = arg.split('=', 1)[0]
  return f'{flag}={values[flag]}' if flag in values else arg


def _only(docs: List[Manifest], kind: str) -> Manifest:
  found = [doc for doc in docs if doc.get('kind') == kind]
  if len(found) != 1:
    raise ManifestError(f'expected one {kind} in the manifests, found {len(found)}')
  return found[0]


def _name(doc: Manifest) -> str:
  return (doc.get('metadata') or {}).get('name', '?')
