"""The compiled pipeline spec (kubeflow/runner.py): what Kubeflow Pipelines runs.

The pipeline is compiled through `mnist-tfx compile` and the written spec is read
back with KFP's own protos; what it must contain is derived from the pipeline object
the local runner builds, not from a list kept here.
"""

import copy
import importlib
import json
import os
import re

from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
import pytest
from tfx.components.infra_validator import executor as tfx_infra_executor
from tfx.dsl.components.base import executor_spec
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from components import infra_validator
from kubeflow import manifests
from kubeflow import runner
from pipeline import config as config_lib
from pipeline.cli import main as cli
from tests.testutil.kubeflow_specs import BEAM_ARGS
from tests.testutil.kubeflow_specs import CLUSTER_SETTINGS
from tests.testutil.kubeflow_specs import Compiled
from tests.testutil.kubeflow_specs import IMAGE
from tests.testutil.kubeflow_specs import SETTINGS
from tests.testutil.kubeflow_specs import compile_with
from tests.testutil.kubeflow_specs import config_with
from tests.testutil.kubeflow_specs import serving_container

INFRA_VALIDATOR = 'InfraValidator'
DOCKERFILE = os.path.join(config_lib.REPO_ROOT, 'kubeflow', 'Dockerfile')


def _node_of(task_name, node_ids):
  """Local node id of a task: its own, or `<id>-...` for the tasks TFX makes of
  one node (the Resolver becomes one task per input)."""
  if task_name in node_ids:
    return task_name
  owners = [i for i in node_ids if task_name.startswith(i + '-')]
  assert owners, f'task {task_name} comes from no component of the local pipeline'
  return max(owners, key=len)


# --- the pipeline spec -------------------------------------------------------


def test_spec_is_a_kfp_pipeline_with_its_root(compiled):
  assert compiled.spec.pipeline_info.name == compiled.config.pipeline_name
  assert compiled.spec.schema_version == '2.0.0'
  assert compiled.spec.default_pipeline_root == 'gs://mnist-test/root'
  # Without a volume claim the platform spec only tells the InfraValidator its
  # namespace.
  assert len(compiled.documents) == 2
  executors = _platform_executors(compiled.documents[1])
  assert list(executors) == [_executor_label(compiled, INFRA_VALIDATOR)]


def test_spec_parse_is_strict(compiled):
  broken = copy.deepcopy(compiled.documents[0])
  broken['root']['dag']['taskz'] = broken['root']['dag'].pop('tasks')
  with pytest.raises(json_format.ParseError):
    json_format.ParseDict(broken, pipeline_spec_pb2.PipelineSpec())


def test_every_local_component_with_the_same_dependencies(compiled):
  local = compiled.local.components
  node_ids = {node.id for node in local}
  expected = {node.id: {up.id for up in node.upstream_nodes} for node in local}
  found = {node_id: set() for node_id in node_ids}
  for task_name, task in compiled.tasks.items():
    found[_node_of(task_name, node_ids)] |= {
        _node_of(t, node_ids) for t in task.dependent_tasks}
  assert found == expected
  for node in compiled.components():  # every component is a task of its own
    compiled.task_of(node.id)
  # The local pipeline's order is an order the spec's DAG allows.
  position = {node.id: i for i, node in enumerate(local)}
  for task_name, task in compiled.tasks.items():
    for upstream in task.dependent_tasks:
      assert (position[_node_of(upstream, node_ids)] <
              position[_node_of(task_name, node_ids)])


def test_every_step_runs_the_image(compiled):
  for node in compiled.components():
    container = compiled.container(compiled.task_of(node.id))
    assert container.image == IMAGE, node.id
    assert tuple(container.command) == kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD


def test_project_files_are_read_from_the_image(compiled):
  text = json.dumps(compiled.documents[0])
  assert config_lib.REPO_ROOT not in text, 'the spec names this checkout'
  copied = _dockerfile_project_dirs()
  in_image = re.findall(re.escape(runner.IMAGE_PROJECT_DIR) + r'/[\w./-]+', text)
  assert in_image, 'no module file or schema is read from the image'
  for path in in_image:
    relative = os.path.relpath(path, runner.IMAGE_PROJECT_DIR)
    assert relative.split('/')[0] in copied, f'{path}: not copied into the image'
    assert os.path.isfile(os.path.join(config_lib.REPO_ROOT, relative)), path


def test_every_executor_class_is_in_the_image(compiled):
  copied = _dockerfile_project_dirs()
  for node in compiled.components():
    args = list(compiled.container(node.id).args)
    class_path = args[args.index('--executor_class_path') + 1]
    module_name, class_name = class_path.rsplit('.', 1)
    top = module_name.split('.')[0]
    if os.path.isdir(os.path.join(config_lib.REPO_ROOT, top)):
      assert top in copied, f'{class_path}: {top}/ is not copied into the image'
    assert hasattr(importlib.import_module(module_name), class_name), class_path


def test_the_image_computes_with_onednn_as_local_runs_do():
  """The image's steps train with oneDNN's kernels on any CPU, as
  tools/environment.sh sets for local runs (tests/tools checks that side)."""
  with open(DOCKERFILE, encoding='utf-8') as f:
    env_lines = f.read().split('\nENV ', 1)[1].split('\n\n', 1)[0]
  assert re.search(r'^\s*TF_ENABLE_ONEDNN_OPTS=1 ', env_lines, re.M), env_lines


def test_trainer_asks_for_gpus_cpu_and_memory(compiled):
  assert runner.TRAINER_ID in compiled.tasks, (
      f'no {runner.TRAINER_ID} task to give the GPU to: {sorted(compiled.tasks)}')
  resources = compiled.container(runner.TRAINER_ID).resources
  assert resources.accelerator.resource_type == 'nvidia.com/gpu'
  assert resources.accelerator.resource_count == '2'
  assert resources.accelerator.count == 2  # what older backends read
  assert resources.resource_cpu_limit == '6'
  assert resources.resource_memory_limit == '24Gi'
  assert resources.memory_limit == pytest.approx(24 * 2**30 / 1e9)


def test_other_steps_get_cpu_and_memory_from_config(compiled):
  kf = compiled.config.kubeflow
  for node in compiled.components():
    if node.id == runner.TRAINER_ID:
      continue
    resources = compiled.container(node.id).resources
    beam = isinstance(node.executor_spec, executor_spec.BeamExecutorSpec)
    cpu, memory = (kf.beam_cpu, kf.beam_memory) if beam else (kf.cpu, kf.memory)
    assert (resources.resource_cpu_request, resources.resource_memory_limit) == (
        cpu, memory), node.id
    assert not resources.HasField('accelerator'), node.id


def test_beam_components_get_the_cluster_beam_args(compiled):
  beam_args = compiled.beam_args()
  assert len(beam_args) >= 3  # ExampleGen, StatisticsGen, Transform at least
  for node_id, args in beam_args.items():
    assert args == BEAM_ARGS, node_id


# The local runs' arguments for a runner and its endpoints: what `./mnist-tfx run
# --set beam.runner=...` passes (tests/e2e/test_distributed.py runs them), with
# the runner's jars shipped with each job, as Beam's own job server images need.
FLINK_ON_THE_CLUSTER = config_lib.BeamConfig(
    runner='flink', job_endpoint='mnist-tfx-flink-job-server:8099',
    worker_pool='localhost:50000', parallelism=3, stage_runner_jars=True)
SPARK_ON_THE_CLUSTER = config_lib.BeamConfig(
    runner='spark', job_endpoint='spark-job-server.beam:8099',
    worker_pool='localhost:50000', stage_runner_jars=True)


def test_beam_steps_on_flink_get_the_local_flink_args(compiled_flink):
  expected = FLINK_ON_THE_CLUSTER.pipeline_args()
  assert '--runner=PortableRunner' in expected
  assert '--parallelism=3' in expected
  assert _local_beam_args(FLINK_ON_THE_CLUSTER) == expected
  beam_args = compiled_flink.beam_args()
  assert len(beam_args) >= 3
  for node_id, args in beam_args.items():
    assert args == expected, node_id


def test_beam_steps_on_spark_get_the_local_spark_args(tmp_path):
  settings = CLUSTER_SETTINGS + [
      'kubeflow.beam.runner=spark',
      f'kubeflow.beam.job_endpoint={SPARK_ON_THE_CLUSTER.job_endpoint}']
  spark = Compiled(tmp_path, settings)
  expected = SPARK_ON_THE_CLUSTER.pipeline_args()
  assert _local_beam_args(SPARK_ON_THE_CLUSTER) == expected
  beam_args = spark.beam_args()
  assert len(beam_args) >= 3
  for node_id, args in beam_args.items():
    assert args == expected, node_id
  assert spark.flink is None, 'Flink manifests for a pipeline on Spark'


def test_pusher_pushes_where_tf_serving_reads(compiled):
  pushers = [t for t in compiled.tasks
             if 'push_destination' in compiled.tasks[t].inputs.parameters]
  assert len(pushers) == 1, f'expected one Pusher task, found {pushers}'
  destination = json.loads(compiled.parameter(pushers[0], 'push_destination'))
  base_path = destination['filesystem']['base_directory']
  assert base_path == 'gs://mnist-test/serving/' + compiled.config.model_name
  assert f'--model_base_path={base_path}' in serving_container(
      compiled.serving)['args']


def test_infra_validator_runs_tfx_s_own_on_tf_serving_in_kubernetes(compiled):
  assert INFRA_VALIDATOR in compiled.tasks, sorted(compiled.tasks)
  args = list(compiled.container(INFRA_VALIDATOR).args)
  assert args[args.index('--executor_class_path') + 1] == (
      'tfx.components.infra_validator.executor.Executor')
  serving_spec = json.loads(compiled.parameter(INFRA_VALIDATOR, 'serving_spec'))
  assert 'kubernetes' in serving_spec
  assert serving_spec['model_name'] == compiled.config.model_name
  # The very image TF Serving runs in the manifests (kubeflow/serving.yaml).
  image = serving_container(compiled.serving)['image']
  name, tag = image.rsplit(':', 1)
  assert name == 'tensorflow/serving'
  assert serving_spec['tensorflow_serving'] == {'image_name': name,
                                                'tags': [tag]}
  assert image == manifests.tf_serving_image()
  # Requests from test examples, to the signatures that take tf.Examples (TFX's
  # request builder makes no others).
  request_spec = json.loads(compiled.parameter(INFRA_VALIDATOR, 'request_spec'))
  assert request_spec['split_name'] == 'eval'
  assert request_spec['num_examples'] >= 1
  assert request_spec['tensorflow_serving']['signature_names'] == [
      'serving_default', 'classify']
  inputs = compiled.tasks[INFRA_VALIDATOR].inputs.artifacts
  assert inputs['model'].task_output_artifact.producer_task == runner.TRAINER_ID
  assert inputs['examples'].task_output_artifact.producer_task == (
      _example_gen_task(compiled))


def test_pusher_needs_the_infra_blessing(compiled):
  (pusher,) = [t for t in compiled.tasks
               if 'push_destination' in compiled.tasks[t].inputs.parameters]
  task = compiled.tasks[pusher]
  assert INFRA_VALIDATOR in task.dependent_tasks
  blessing = task.inputs.artifacts['infra_blessing'].task_output_artifact
  assert (blessing.producer_task, blessing.output_artifact_key) == (
      INFRA_VALIDATOR, 'blessing')
  model_blessing = task.inputs.artifacts['model_blessing'].task_output_artifact
  assert model_blessing.producer_task == 'Evaluator'
  # And the Pusher's executor is the one that checks both blessings.
  args = list(compiled.container(pusher).args)
  assert args[args.index('--executor_class_path') + 1] == (
      'components.atomic_pusher.Executor')


def test_infra_validator_is_told_its_namespace(compiled, compiled_with_volume):
  """TFX's InfraValidator starts the model server pod in KFP_NAMESPACE, which
  KFP v2 does not set: the platform spec sets it from the pod's namespace."""
  for spec in (compiled, compiled_with_volume):
    executors = _platform_executors(spec.documents[1])
    assert executors[_executor_label(spec, INFRA_VALIDATOR)]['fieldPathAsEnv'] == [
        {'name': 'KFP_NAMESPACE', 'fieldPath': 'metadata.namespace'}]
    others = [label for label, settings in executors.items()
              if 'fieldPathAsEnv' in settings]
    assert others == [_executor_label(spec, INFRA_VALIDATOR)]


def test_the_local_pipeline_validates_on_its_own_model_server(compiled):
  (local,) = [c for c in compiled.components() if c.id == INFRA_VALIDATOR]
  assert isinstance(local, infra_validator.LocalInfraValidator)
  (cluster,) = [c for c in runner.build(compiled.config).components
                if c.id == INFRA_VALIDATOR]
  assert not isinstance(cluster, infra_validator.LocalInfraValidator)
  assert cluster.executor_spec.executor_class is tfx_infra_executor.Executor


def test_a_tf_serving_image_without_a_version_is_refused():
  with pytest.raises(runner.KubeflowConfigError, match='no tag or digest'):
    runner.model_server('tensorflow/serving')
  spec = runner.model_server('registry.example:5000/serving@sha256:abc')
  assert spec.tensorflow_serving.image_name == 'registry.example:5000/serving'
  assert list(spec.tensorflow_serving.digests) == ['sha256:abc']
  spec = runner.model_server('registry.example:5000/tf/serving:2.21.0-gpu')
  assert (spec.tensorflow_serving.image_name,
          list(spec.tensorflow_serving.tags)) == (
              'registry.example:5000/tf/serving', ['2.21.0-gpu'])


def test_example_gen_reads_the_cluster_data(compiled):
  assert _example_gen_input(compiled) == 'gs://mnist-test/data'


def test_vertex_job_json(tmp_path):
  (job,), _ = compile_with(tmp_path, SETTINGS, name='pipeline.json')
  parsed = json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
  assert parsed.runtime_config.gcs_output_directory == 'gs://mnist-test/root'
  spec = json_format.ParseDict(json_format.MessageToDict(parsed.pipeline_spec),
                               pipeline_spec_pb2.PipelineSpec())
  assert runner.TRAINER_ID in spec.root.dag.tasks


# --- a volume claim, a Trainer image -----------------------------------------


def test_volume_claim_is_mounted_in_every_step(compiled_with_volume):
  documents = compiled_with_volume.documents
  assert len(documents) == 2, 'no platform spec for the volume claim'
  executors = _platform_executors(documents[1])
  for node in compiled_with_volume.components():
    label = compiled_with_volume.spec.components[node.id].executor_label
    # The fields of kfp-kubernetes' KubernetesExecutorConfig.PvcMount.
    assert executors[label]['pvcMount'] == [{
        'mountPath': '/mnt/mnist',
        'pvcNameParameter': {'runtimeValue': {'constant': 'mnist-tfx-data'}},
        'constant': 'mnist-tfx-data',
    }], node.id
  assert _example_gen_input(compiled_with_volume) == '/mnt/mnist/data'


def test_trainer_image(compiled_with_volume):
  for node in compiled_with_volume.components():
    image = compiled_with_volume.container(node.id).image
    assert image == ('registry.example/mnist-tfx:test-gpu'
                     if node.id == runner.TRAINER_ID else IMAGE), node.id


def test_settings_that_cannot_work_are_refused(tmp_path):
  result = CliRunner().invoke(
      cli.main, ['compile', '--output', str(tmp_path / 'p.yaml'),
                 '--set', 'kubeflow.pipeline_root=/local/path',
                 '--set', 'kubeflow.serving_root=/mnt/x/serving',
                 '--set', 'kubeflow.trainer_memory=lots'])
  assert result.exit_code == 2
  for expected in ('kubeflow.image is not set', 'kubeflow.data_dir is not set',
                   "kubeflow.pipeline_root='/local/path'",
                   "kubeflow.serving_root='/mnt/x/serving'",
                   "kubeflow.trainer_memory='lots'"):
    assert expected in result.output
  assert not os.path.exists(tmp_path / 'p.yaml')


# --- helpers -----------------------------------------------------------------


def _dockerfile_project_dirs():
  """Top-level project folders kubeflow/Dockerfile copies to IMAGE_PROJECT_DIR."""
  with open(DOCKERFILE, encoding='utf-8') as f:
    text = f.read()
  assert f'WORKDIR {runner.IMAGE_PROJECT_DIR}\n' in text
  assert f'PYTHONPATH={runner.IMAGE_PROJECT_DIR}' in text
  workdir_part = text.split(f'WORKDIR {runner.IMAGE_PROJECT_DIR}\n', 1)[1]
  return {src for src, dst in re.findall(r'^COPY (\w+) (\w+)$', workdir_part,
                                         re.M) if src == dst}


def _local_beam_args(beam):
  """The Beam arguments of a local run with `beam`'s runner and endpoints."""
  local = config_with([f'beam.runner={beam.runner}',
                       f'beam.job_endpoint={beam.job_endpoint}',
                       f'beam.worker_pool={beam.worker_pool}',
                       f'beam.parallelism={beam.parallelism}',
                       f'beam.stage_runner_jars={beam.stage_runner_jars}'])
  return local.beam.pipeline_args()


def _example_gen_task(compiled):
  (task,) = [t for t in compiled.tasks
             if 'input_base' in compiled.tasks[t].inputs.parameters]
  return task


def _executor_label(compiled, node_id):
  return compiled.spec.components[node_id].executor_label


def _platform_executors(document):
  """The per-executor settings of a KFP platform spec document."""
  platform = json_format.ParseDict(document, pipeline_spec_pb2.PlatformSpec())
  return json_format.MessageToDict(
      platform.platforms['kubernetes'].deployment_spec)['executors']


def _example_gen_input(compiled):
  (task,) = [t for t in compiled.tasks
             if 'input_base' in compiled.tasks[t].inputs.parameters]
  return compiled.parameter(task, 'input_base')

