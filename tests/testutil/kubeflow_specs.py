"""`mnist-tfx compile` with cluster settings, and its output read back with KFP's
protos."""

import json
from typing import List, Tuple

from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
import yaml

from kubeflow import manifests
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline.cli import main as cli

IMAGE = 'registry.example/mnist-tfx:test'
# Dataflow's args rather than the default, so they can only come from the config.
BEAM_ARGS = ['--runner=DataflowRunner', '--project=example-project',
             '--region=europe-west4', '--temp_location=gs://mnist-test/tmp',
             f'--sdk_container_image={IMAGE}']
CLUSTER_SETTINGS = [
    f'kubeflow.image={IMAGE}',
    'kubeflow.pipeline_root=gs://mnist-test/root',
    'kubeflow.serving_root=gs://mnist-test/serving',
    'kubeflow.data_dir=gs://mnist-test/data',
    'kubeflow.trainer_gpus=2',
    'kubeflow.trainer_cpu=6',
    'kubeflow.trainer_memory=24Gi',
]
SETTINGS = CLUSTER_SETTINGS + [
    'kubeflow.beam.runner=dataflow',
    'kubeflow.beam.extra_args=' + ','.join(BEAM_ARGS[1:]),
]
# Flink on the cluster with the default endpoints, which the Flink manifests
# answer (kubeflow/flink.py); a parallelism other than the default, so it can only
# come from the setting.
FLINK_SETTINGS = CLUSTER_SETTINGS + ['kubeflow.beam.runner=flink',
                                     'kubeflow.beam.parallelism=3']
VOLUME_SETTINGS = SETTINGS[:1] + [
    'kubeflow.trainer_image=registry.example/mnist-tfx:test-gpu',
    'kubeflow.pipeline_root=gs://mnist-test/root',
    'kubeflow.volume_claim=mnist-tfx-data',
    'kubeflow.volume_mount_path=/mnt/mnist',
    'kubeflow.serving_root=/mnt/mnist/serving',
    'kubeflow.data_dir=/mnt/mnist/data',
]


def config_with(settings) -> config_lib.PipelineConfig:
  """The `full` profile with `settings` (--set assignments) applied."""
  config = config_lib.load('full')
  for assignment in settings:
    config = config_lib.apply_override(config, assignment)
  return config


def compile_with(tmp_path, settings, name='pipeline.yaml') -> Tuple[List, str]:
  """Runs `mnist-tfx compile` with `settings`; returns the written documents and
  what the command printed."""
  output = str(tmp_path / name)
  args = ['compile', '--output', output]
  for assignment in settings:
    args += ['--set', assignment]
  result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
  assert result.exit_code == 0, result.output
  with open(output, encoding='utf-8') as f:
    if name.endswith('.json'):
      return [json.load(f)], result.output
    return list(yaml.safe_load_all(f)), result.output


class Compiled:
  """A compiled spec, parsed with KFP's protos, and the local pipeline beside it."""

  def __init__(self, tmp_path, settings):
    self.config = config_with(settings)
    self.documents, _ = compile_with(tmp_path, settings)
    # Strict: a field PipelineSpec does not have fails the parse.
    self.spec = json_format.ParseDict(self.documents[0],
                                      pipeline_spec_pb2.PipelineSpec())
    # Building the local pipeline creates its metadata folder: under tmp_path.
    self.local = local_runner.build(
        self.config.replace(output_dir=str(tmp_path / 'local')))
    self.serving = manifests.load(str(tmp_path / 'kubeflow-serving.yaml'))
    flink_path = tmp_path / 'kubeflow-flink.yaml'
    self.flink = manifests.load(str(flink_path)) if flink_path.exists() else None

  @property
  def tasks(self):
    return self.spec.root.dag.tasks

  def container(self, task_name):
    component = self.spec.components[self.tasks[task_name].component_ref.name]
    executor = self.spec.deployment_spec.fields['executors'].struct_value.fields[
        component.executor_label]
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec()
    json_format.ParseDict(json_format.MessageToDict(executor.struct_value), spec)
    assert spec.HasField('container'), f'{task_name} runs no container'
    return spec.container

  def parameter(self, task_name, name):
    """A constant parameter of a task (schema 2.0.0 keeps them in constant_value)."""
    value = self.tasks[task_name].inputs.parameters[name].runtime_value
    if value.HasField('constant'):
      return json_format.MessageToDict(value.constant)
    kind = value.constant_value.WhichOneof('value')
    assert kind, f'{task_name}.{name} is not a constant'
    return getattr(value.constant_value, kind)

  def beam_args(self):
    """The Beam arguments of each Beam step, by task name (they follow `{{$}}`,
    TFX's placeholder for the executor's own arguments)."""
    found = {}
    for node in self.components():
      if isinstance(node.executor_spec, executor_spec.BeamExecutorSpec):
        args = list(self.container(self.task_of(node.id)).args)
        found[node.id] = args[args.index('{{$}}') + 1:]
    return found

  def components(self):
    return [c for c in self.local.components
            if isinstance(c, base_component.BaseComponent)]

  def task_of(self, node_id):
    """The task a local component became (its own id)."""
    assert node_id in self.tasks, (
        f'component {node_id} of the local pipeline is not in the spec: '
        f'{sorted(self.tasks)}')
    return node_id


def only(docs, kind):
  (doc,) = [d for d in docs if d['kind'] == kind]
  return doc


def serving_container(docs):
  """TF Serving's container in the Deployment of `docs`."""
  pod = only(docs, 'Deployment')['spec']['template']['spec']
  (container,) = [c for c in pod['containers'] if c['name'] == manifests.CONTAINER]
  return container
