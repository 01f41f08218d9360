"""Compiles the pipeline for Kubeflow Pipelines with TFX's KubeflowV2DagRunner.

The pipeline is the one the local runner runs, built by pipeline.create_pipeline. Only
what genuinely differs on a cluster is chosen here, from `config.kubeflow`:
- paths: pipeline root, serving root and data as URIs the pods share (gs://...) or
  paths on a mounted PersistentVolumeClaim;
- the image, and that the project's files (module files, schema) are read from it:
  kubeflow/Dockerfile puts the project at IMAGE_PROJECT_DIR;
- CPU and memory per component, a GPU for the Trainer;
- the Beam args of the Beam components;
- the model server the InfraValidator proves the candidate on: TFX's own
  InfraValidator starting the tensorflow/serving image of kubeflow/serving.yaml in
  a pod (KubernetesConfig), where the local pipeline runs `python -m serving`.

The result is KFP's v2 pipeline spec (IR): YAML for Kubeflow Pipelines, with a second
document, KFP's platform spec (the InfraValidator's namespace, the volume claim when
one is mounted), or the PipelineJob JSON that Vertex AI Pipelines takes.
"""

import contextlib
import json
import os
import posixpath
from typing import Any, Dict, Iterator, List, Optional

from kfp.pipeline_spec import pipeline_spec_pb2
from kubernetes.utils import parse_quantity
import tensorflow as tf
from tfx import v1 as tfx
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.orchestration.kubeflow.v2 import pipeline_builder
from tfx.proto import infra_validator_pb2
import yaml

from kubeflow import manifests
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib

# Where kubeflow/Dockerfile copies the project (and puts it on PYTHONPATH).
IMAGE_PROJECT_DIR = '/opt/mnist-tfx'
TRAINER_ID = 'Trainer'
# TFX's KubernetesRunner reads the namespace from here (tfx/utils/kube_utils.py).
KFP_NAMESPACE_ENV = 'KFP_NAMESPACE'

ResourceSpec = (
    pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec)


class KubeflowConfigError(ValueError):
  """config.kubeflow cannot describe a runnable cluster pipeline; says why."""


def build(config: config_lib.PipelineConfig) -> tfx.dsl.Pipeline:
  """The local pipeline, with cluster paths, image paths, resources and Beam args."""
  kf = config.kubeflow
  check(config)
  with _user_code_from_image():
    pipeline = pipeline_lib.create_pipeline(
        config,
        pipeline_root=kf.pipeline_root,
        data_dir=kf.data_dir,
        serving_root=kf.serving_root,
        beam_pipeline_args=kf.beam.pipeline_args(),
        model_server=model_server())
  components = [c for c in pipeline.components
                if isinstance(c, base_component.BaseComponent)]
  for component in components:
    _read_project_files_from_image(component)
    component.with_platform_config(resource_spec(config, component))
  if kf.trainer_gpus and TRAINER_ID not in {c.id for c in components}:
    raise KubeflowConfigError(
        f'kubeflow.trainer_gpus={kf.trainer_gpus} but the pipeline has no '
        f'component {TRAINER_ID!r}; it has {[c.id for c in components]}')
  return pipeline


def model_server(
    image: Optional[str] = None) -> infra_validator_pb2.ServingSpec:
  """TF Serving on Kubernetes, the image TF Serving runs in kubeflow/serving.yaml
  (manifests.tf_serving_image), so the model is proven on the server it is pushed
  to. The model server pod runs in the pipeline's namespace with the step's
  service account, and reads the model from the pipeline root."""
  image = image or manifests.tf_serving_image()
  name, digest = image.split('@', 1) if '@' in image else (image, '')
  tag = ''
  if not digest and ':' in name.rsplit('/', 1)[-1]:
    name, tag = name.rsplit(':', 1)
  if not (tag or digest):
    raise KubeflowConfigError(
        f'the TF Serving image {image!r} of {manifests.TEMPLATE} names no tag or '
        'digest; the InfraValidator must run the same version')
  return infra_validator_pb2.ServingSpec(
      tensorflow_serving=infra_validator_pb2.TensorFlowServing(
          image_name=name, tags=[tag] if tag else [],
          digests=[digest] if digest else []),
      kubernetes=infra_validator_pb2.KubernetesConfig())


def compile_pipeline(config: config_lib.PipelineConfig,
                     output_path: str) -> Dict[str, Any]:
  """Writes the pipeline spec to output_path (.yaml/.yml or .json); returns it."""
  kf = config.kubeflow
  if not output_path.endswith(('.yaml', '.yml', '.json')):
    raise KubeflowConfigError(
        f'{output_path}: write a .yaml (Kubeflow Pipelines) or .json '
        '(Vertex AI PipelineJob) file')
  if output_path.endswith('.json') and kf.volume_claim:
    raise KubeflowConfigError(
        'a volume claim needs KFP\'s platform spec, which only the YAML form '
        'carries; write a .yaml file')
  pipeline = build(config)
  images: Any = kf.image
  if kf.trainer_image:
    images = {pipeline_builder.DEFAULT_IMAGE_PATH_KEY: kf.image,
              TRAINER_ID: kf.trainer_image}
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=images))
  job = runner.run(pipeline, write_out=False)
  spec = job['pipelineSpec']
  # KFP takes the pipeline root from here when a run does not name one; TFX only
  # puts it in the PipelineJob's runtime config, which KFP's YAML form lacks.
  spec['defaultPipelineRoot'] = kf.pipeline_root
  platform = platform_spec(config, spec)

  os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
  if output_path.endswith(('.yaml', '.yml')):
    documents = [spec] + ([platform] if platform else [])
    with open(output_path, 'w', encoding='utf-8') as f:
      f.write(f'# {config.pipeline_name}: KFP pipeline spec compiled by '
              f'`mnist-tfx compile` ({spec.get("sdkVersion", "tfx")}).\n')
      yaml.safe_dump_all(documents, f, sort_keys=True)
  else:
    with open(output_path, 'w', encoding='utf-8') as f:
      json.dump(job, f, sort_keys=True, indent=1)
  return job


def check(config: config_lib.PipelineConfig) -> None:
  """Raises KubeflowConfigError naming every missing or unusable setting."""
  kf = config.kubeflow
  problems = []
  for name in ('image', 'pipeline_root', 'serving_root', 'data_dir'):
    if not getattr(kf, name):
      problems.append(f'kubeflow.{name} is not set')
  schemes = set(tf.io.gfile.get_registered_schemes()) - {'', 'file', 'ram'}
  if kf.pipeline_root and _scheme(kf.pipeline_root) not in schemes:
    problems.append(
        f'kubeflow.pipeline_root={kf.pipeline_root!r}: KFP keeps artifacts in '
        f'object storage, and TFX reads them with TensorFlow, which knows '
        f'{sorted(s + "://" for s in schemes)}')
  for name in ('serving_root', 'data_dir'):
    value = getattr(kf, name)
    if not value or _scheme(value) in schemes:
      continue
    if not kf.volume_claim or not _under(value, kf.volume_mount_path):
      problems.append(
          f'kubeflow.{name}={value!r} is neither a URI TensorFlow reads '
          f'({sorted(s + "://" for s in schemes)}) nor a path under '
          f'kubeflow.volume_mount_path={kf.volume_mount_path!r} with '
          'kubeflow.volume_claim set')
  if kf.trainer_gpus < 0:
    problems.append('kubeflow.trainer_gpus must be >= 0')
  for name in ('cpu', 'beam_cpu', 'trainer_cpu', 'memory', 'beam_memory',
               'trainer_memory'):
    _check_quantity(problems, name, getattr(kf, name))
  if problems:
    raise KubeflowConfigError('; '.join(problems))


def resource_spec(config: config_lib.PipelineConfig,
                  component: base_component.BaseComponent) -> ResourceSpec:
  """CPU and memory (request = limit) for a component; the Trainer's GPU.

  Both KFP's current string fields and the deprecated numbers are set, as KFP's own
  compiler does, so older backends and Vertex AI read them too.
  """
  kf = config.kubeflow
  if component.id == TRAINER_ID:
    cpu, memory = kf.trainer_cpu, kf.trainer_memory
  elif isinstance(component.executor_spec, executor_spec.BeamExecutorSpec):
    cpu, memory = kf.beam_cpu, kf.beam_memory
  else:
    cpu, memory = kf.cpu, kf.memory
  spec = ResourceSpec(
      resource_cpu_request=cpu, resource_cpu_limit=cpu,
      resource_memory_request=memory, resource_memory_limit=memory)
  # pylint: disable=protobuf-deprecated-field
  spec.cpu_request = spec.cpu_limit = float(parse_quantity(cpu))  # cores
  spec.memory_request = spec.memory_limit = float(parse_quantity(memory)) / 1e9  # GB
  if component.id == TRAINER_ID and kf.trainer_gpus:
    spec.accelerator.resource_type = kf.trainer_gpu_type
    spec.accelerator.resource_count = str(kf.trainer_gpus)
    spec.accelerator.type = kf.trainer_gpu_type
    spec.accelerator.count = kf.trainer_gpus
  return spec


def platform_spec(config: config_lib.PipelineConfig,
                  spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  """KFP's Kubernetes platform spec: kubeflow.volume_claim mounted in every step,
  and the InfraValidator's namespace.

  The structure kfp-kubernetes writes (KubernetesExecutorConfig,
  kubernetes_platform/proto/kubernetes_executor_config.proto in kubeflow/pipelines):
  mount_pvc's PvcMount, with the claim both as the current pvcNameParameter and the
  deprecated constant; use_field_path_as_env's FieldPathAsEnv. TFX's InfraValidator
  starts its model server pod in the namespace named by KFP_NAMESPACE, which KFP v1
  set in every step and KFP v2 sets in none (it sets KFP_POD_NAME): without it the
  InfraValidator could never bless a model.
  """
  kf = config.kubeflow
  mount = {
      'mountPath': kf.volume_mount_path,
      'pvcNameParameter': {'runtimeValue': {'constant': kf.volume_claim}},
      'constant': kf.volume_claim,  # deprecated; older KFP backends read it
  }
  infra_validator = spec.get('components', {}).get(
      pipeline_lib.INFRA_VALIDATOR_ID, {}).get('executorLabel')
  executors = {}
  for label, executor in spec['deploymentSpec']['executors'].items():
    if 'container' not in executor:
      continue
    settings = {}
    if kf.volume_claim:
      settings['pvcMount'] = [mount]
    if label == infra_validator:
      settings['fieldPathAsEnv'] = [
          {'name': KFP_NAMESPACE_ENV, 'fieldPath': 'metadata.namespace'}]
    if settings:
      executors[label] = settings
  if not executors:
    return None
  return {'platforms': {'kubernetes': {'deploymentSpec': {
      'executors': executors}}}}


def default_output_path(config: config_lib.PipelineConfig) -> str:
  return os.path.join(os.path.abspath(config.output_dir), 'kubeflow',
                      f'{config.pipeline_name}.yaml')


@contextlib.contextmanager
def _user_code_from_image() -> Iterator[None]:
  """Module files stay paths into the image instead of wheels in the pipeline root.

  Locally TFX packages each module file's folder as a wheel under the pipeline root
  when the pipeline is compiled; on a cluster that would need write access to the
  bucket at compile time and duplicate what the image already holds. TFX skips the
  packaging while this variable is set at component construction.
  """
  name = 'UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES'
  previous = os.environ.get(name)
  os.environ[name] = '1'
  try:
    yield
  finally:
    if previous is None:
      del os.environ[name]
    else:
      os.environ[name] = previous


def _read_project_files_from_image(
    component: base_component.BaseComponent) -> None:
  """Points exec properties naming files of this checkout at their image copies."""
  properties = component.exec_properties
  for key, value in list(properties.items()):
    if isinstance(value, str) and _under(value, config_lib.REPO_ROOT):
      relative = os.path.relpath(value, config_lib.REPO_ROOT)
      properties[key] = posixpath.join(IMAGE_PROJECT_DIR,
                                       *relative.split(os.sep))


def _under(path: str, directory: str) -> bool:
  directory = directory.rstrip('/')
  return path == directory or path.startswith(directory + '/')


def _scheme(uri: str) -> str:
  return uri.split('://', 1)[0] if '://' in uri else ''


def _check_quantity(problems: List[str], name: str, value: str) -> None:
  try:
    quantity = parse_quantity(value)
  except ValueError:
    quantity = None
  if quantity is None or not quantity.is_finite() or quantity <= 0:
    problems.append(f'kubeflow.{name}={value!r} is not a positive Kubernetes '
                    'quantity (e.g. 2, 500m, 8Gi)')
