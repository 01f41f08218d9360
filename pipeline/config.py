"""The one place where paths and hyper-parameters of the pipeline live.

Every runner, the CLI and the tests build a `PipelineConfig` from a named profile
(`full`, the default; `reference`, the earlier default recipe at about three
times its training compute; or `smoke`, a fast run on a small slice of MNIST for
tests) and
optional overrides, then hand it to the pipeline factory. Changing a hyper-parameter
means changing it here, or overriding it with `--set name=value` on the CLI.
"""

import dataclasses
import os
import typing
from typing import Any, Dict, List, Optional

from models import serving_contract as contract
from models.trainer.training_config import TrainingConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES_DIR = os.path.join(REPO_ROOT, 'models')
SCHEMA_DIR = os.path.join(REPO_ROOT, 'pipeline', 'schema')


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """What the Evaluator requires of a candidate before it may be pushed."""
  # Test-set accuracy a model must reach to be blessed at all.
  min_accuracy: float = 0.99
  # How much worse than the last blessed model (the baseline) it may be.
  max_accuracy_drop: float = 0.001


BEAM_RUNNERS = ('direct', 'flink', 'spark', 'dataflow')


@dataclasses.dataclass(frozen=True)
class BeamConfig:
  """Where the Beam steps (ExampleGen, StatisticsGen, Transform, Evaluator) run.

  `direct` runs each in its own step's process. `flink` and `spark` submit them to
  Beam's job server in front of a cluster (`mnist-tfx cluster up flink`, or the
  Kubernetes one of docs/kubeflow.md); the cluster runs the Python code in Beam
  worker pools beside its task managers (Beam's EXTERNAL environment), which run
  this project's environment. `dataflow` takes its project, region and staging
  paths from `extra_args`. The local runs and the compiled Kubeflow spec build
  their arguments here, so both give a cluster the same ones.
  """
  runner: str = 'direct'
  # direct: `in_memory` (one worker, least overhead on small data) or
  # `multi_processing` with direct_num_workers processes (0: one per core).
  direct_running_mode: str = 'in_memory'
  direct_num_workers: int = 0
  # flink, spark: the job server's gRPC address, and the address at which each task
  # manager (Flink) or executor (Spark) reaches its own worker pool. On Kubernetes
  # the pool is a sidecar (localhost); `mnist-tfx cluster up` gives every task
  # manager a pool of its own under the name `beam-worker-pool`.
  job_endpoint: str = 'localhost:8099'
  worker_pool: str = 'beam-worker-pool:50000'
  # flink: tasks per operator (at most the cluster's task slots).
  parallelism: int = 2
  # flink, spark: ship the job server's class path (150-270 MB) with every job,
  # as Beam does by default. `mnist-tfx cluster up` puts it on the workers'
  # own class path instead, and its job server knows the option that turns the
  # shipping off (docs/scale-out.md); another job server needs `true`.
  stage_runner_jars: bool = False
  # Appended to the runner's arguments (Dataflow's --project, --region, ...).
  extra_args: List[str] = dataclasses.field(default_factory=list)

  def pipeline_args(self) -> List[str]:
    """The Beam pipeline arguments of every Beam step."""
    if self.runner not in BEAM_RUNNERS:
      raise ValueError(f'beam.runner={self.runner!r}: choose one of '
                       f'{", ".join(BEAM_RUNNERS)}')
    if self.runner == 'direct':
      args = ['--runner=DirectRunner',
              f'--direct_running_mode={self.direct_running_mode}']
      if self.direct_running_mode != 'in_memory':  # in_memory has one worker
        workers = self.direct_num_workers or (os.cpu_count() or 1)
        args.append(f'--direct_num_workers={workers}')
    elif self.runner == 'dataflow':
      args = ['--runner=DataflowRunner']
    else:
      args = ['--runner=PortableRunner', f'--job_endpoint={self.job_endpoint}',
              '--environment_type=EXTERNAL',
              f'--environment_config={self.worker_pool}']
      if self.runner == 'flink':
        args.append(f'--parallelism={self.parallelism}')
      if not self.stage_runner_jars:
        args.append('--pipeline_resources_detector_factory_class='
                    'org.mnisttfx.beam.NothingToStage')
    return args + list(self.extra_args)


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
  """Where and how the pipeline runs on Kubeflow Pipelines (`mnist-tfx compile`,
  kubeflow/runner.py, docs/kubeflow.md); set with --set kubeflow.NAME=VALUE.

  It is defined before PipelineConfig, whose `kubeflow` field it is (the profiles
  below instantiate PipelineConfig).
  """
  # The pipeline image (kubeflow/Dockerfile). Tag it per build: KFP's cache key
  # includes the image, and the project's code is read from it.
  image: str = ''
  # The Trainer's image, if not `image`: the same Dockerfile built with
  # --build-arg TENSORFLOW_EXTRAS=and-cuda (TensorFlow's CUDA libraries).
  trainer_image: str = ''
  # Storage every pod shares: URIs TensorFlow reads (gs://...) or, for
  # serving_root and data_dir, paths under volume_mount_path. KFP keeps every
  # artifact under pipeline_root, which must be object storage.
  pipeline_root: str = ''
  serving_root: str = ''  # the Pusher writes serving_root/<model_name>/<version>
  data_dir: str = ''  # the four MNIST IDX files, raw or .gz
  # A PersistentVolumeClaim mounted at volume_mount_path in every step and in TF
  # Serving (empty: none).
  volume_claim: str = ''
  volume_mount_path: str = '/mnt/mnist-tfx'
  # Kubernetes CPU and memory of each step (request = limit): components that run
  # Beam (ExampleGen, StatisticsGen, Transform, Evaluator), the Trainer, the rest.
  beam_cpu: str = '4'
  beam_memory: str = '16Gi'
  trainer_cpu: str = '4'
  trainer_memory: str = '16Gi'
  cpu: str = '1'
  memory: str = '4Gi'
  trainer_gpus: int = 1
  # The GPU's resource name on Kubeflow Pipelines; on Vertex AI Pipelines an
  # accelerator type such as NVIDIA_TESLA_T4.
  trainer_gpu_type: str = 'nvidia.com/gpu'
  # Where the Beam steps run on the cluster. The default runs Beam's DirectRunner
  # inside each step's pod, one process per CPU of beam_cpu; docs/kubeflow.md gives
  # the settings for Flink, Spark and Dataflow. Beam's own job server images
  # ship the runner's jars with each job (stage_runner_jars).
  beam: BeamConfig = dataclasses.field(default_factory=lambda: BeamConfig(
      direct_running_mode='multi_processing', direct_num_workers=4,
      job_endpoint='mnist-tfx-flink-job-server:8099',
      worker_pool='localhost:50000', stage_runner_jars=True))


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Paths and hyper-parameters of one pipeline; see `PROFILES` for the presets."""

  profile: str = 'full'
  # Names. Kubeflow's v2 compiler accepts only [a-z0-9-] in pipeline names.
  pipeline_name: str = 'mnist-tfx'
  model_name: str = contract.MODEL_NAME

  # Where things are. Relative paths are resolved against the working directory.
  data_dir: str = 'data/mnist'
  output_dir: str = 'outputs'

  # Data: the held-out `valid` split carved from the 60k training images, used to
  # pick the best epoch; the 10k test images are the `eval` split, used only by the
  # Evaluator.
  valid_examples: int = 5000
  split_seed: int = 20261124
  # Keep only the first N examples of each IDX part (None: all). Used by `smoke`.
  max_train_examples: Optional[int] = None
  max_test_examples: Optional[int] = None

  # Apache Beam, for ExampleGen, StatisticsGen, Transform and Evaluator: the
  # in-memory DirectRunner unless `--set beam.runner=flink` (or spark).
  beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)

  # Transform: statistics over transformed data cost time and add little for
  # images (they are the pixel statistics again, scaled).
  transform_statistics: bool = False

  training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
  evaluation: EvaluationConfig = dataclasses.field(
      default_factory=EvaluationConfig)

  enable_cache: bool = True

  # Kubeflow Pipelines; unused by the local runner.
  kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

  # --- derived paths --------------------------------------------------------
  @property
  def abs_output_dir(self) -> str:
    return self._abs(self.output_dir)

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self._abs(self.output_dir), 'pipelines', self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self._abs(self.output_dir), 'metadata',
                        self.pipeline_name, 'metadata.sqlite')

  @property
  def serving_root(self) -> str:
    """TF Serving's model base path is serving_root/model_name."""
    return os.path.join(self._abs(self.output_dir), 'serving')

  @property
  def model_base_path(self) -> str:
    return os.path.join(self.serving_root, self.model_name)

  @property
  def reports_dir(self) -> str:
    return os.path.join(self._abs(self.output_dir), 'reports')

  @property
  def abs_data_dir(self) -> str:
    return self._abs(self.data_dir)

  @staticmethod
  def _abs(path: str) -> str:
    return path if '://' in path else os.path.abspath(path)

  def replace(self, **changes: Any) -> 'PipelineConfig':
    return dataclasses.replace(self, **changes)


PROFILES: Dict[str, PipelineConfig] = {
    'full': PipelineConfig(),
    # A few seconds per component: the first 2000 training and 500 test images.
    'smoke': PipelineConfig(
        profile='smoke',
        output_dir='outputs/smoke',
        valid_examples=200,
        max_train_examples=2000,
        max_test_examples=500,
        # A small network of its own, every setting spelled out, so that a change
        # to the production recipe (`full`) never changes what the tests train or
        # how long they take: one compact CNN of 8 filters on the whole image, in
        # float32 on every machine, without augmentation. Batch 32 and a warm-up
        # epoch: with ~170 steps in all, bigger batches or a cold start at the
        # full rate leave the batch-norm statistics unsettled and the accuracy
        # anywhere between 25% and 85% from seed to seed.
        training=TrainingConfig(architecture='compact', filters=8, members=1,
                                crop=0, epochs=3, batch_size=32,
                                learning_rate=4e-3, weight_decay=0.0,
                                warmup_epochs=1.0,
                                final_learning_rate_fraction=0.01,
                                dropout=0.3, spatial_dropout=False,
                                augment=False, elastic=0.0,
                                early_stopping_patience=0, seed=0,
                                mixed_precision=False),
        evaluation=EvaluationConfig(min_accuracy=0.5),
    ),
    # The recipe `full` replaced: the reference CNN, 20 epochs in float32, about
    # three times the training compute (bench/training_benchmark.py) for the same
    # accuracy: models/trainer/recipe.md.
    'reference': PipelineConfig(
        profile='reference',
        output_dir='outputs/reference',
        training=TrainingConfig(architecture='reference', filters=32, members=1,
                                crop=0,
                                epochs=20, batch_size=128, learning_rate=2e-3,
                                warmup_epochs=0.0, dropout=0.3,
                                spatial_dropout=False,
                                augmentation='shared_chain',
                                mixed_precision=False),
    ),
}


def load(profile: str = 'full', **overrides: Any) -> PipelineConfig:
  """Returns the named profile with `overrides` applied."""
  if profile not in PROFILES:
    raise ValueError(
        f'unknown profile {profile!r}; choose one of {sorted(PROFILES)}')
  return PROFILES[profile].replace(**overrides)


def override_names(config: Any, prefix: str = '') -> List[str]:
  """Every settable field name, nested ones dotted (training.epochs)."""
  names = []
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if dataclasses.is_dataclass(value):
      names += override_names(value, prefix + field.name + '.')
    else:
      names.append(prefix + field.name)
  return names


def apply_override(config: PipelineConfig, assignment: str) -> PipelineConfig:
  """Returns `config` with `name=value` applied (name may be dotted: training.epochs)."""
  name, sep, text = assignment.partition('=')
  if not sep or name not in override_names(config):
    raise ValueError(
        f'--set takes name=value with name one of {override_names(config)}; '
        f'got {assignment!r}')
  return _assign(config, name.split('.'), text, name)


def _assign(config: Any, path: List[str], text: str, name: str) -> Any:
  head = path[0]
  value = getattr(config, head)
  if len(path) > 1:
    value = _assign(value, path[1:], text, name)
  else:
    field_type = {f.name: f.type for f in dataclasses.fields(config)}[head]
    optional = type(None) in typing.get_args(field_type)
    value = _parse_value(value, text, name, optional)
  return dataclasses.replace(config, **{head: value})


_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('0', 'false', 'no', 'off')


def _parse_value(current: Any, text: str, name: str, optional: bool) -> Any:
  """`text` typed like `current`, the field's value now (`none` for None where the
  field is Optional); ValueError names what was expected."""
  if isinstance(current, bool):
    if text.lower() not in _TRUE + _FALSE:
      raise ValueError(f'{name}={text!r}: expected true or false')
    value: Any = text.lower() in _TRUE
  elif isinstance(current, (int, float)) or current is None:
    kind = float if isinstance(current, float) else int  # None: Optional[int]
    if optional and text.lower() == 'none':
      value = None
    else:
      try:
        value = kind(text)
      except ValueError:
        raise ValueError(
            f'{name}={text!r}: expected {"a number" if kind is float else "an integer"}'
            f'{" or none" if optional else ""}') from None
  elif isinstance(current, list):
    value = [item for item in text.split(',') if item]
  else:
    value = text
  return value
