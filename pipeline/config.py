"""The one place where paths and hyper-parameters of the pipeline live.

Every runner, the CLI and the tests build a `PipelineConfig` from a named profile
(`full`, the default, or `smoke`, a fast run on a small slice of MNIST for tests) and
optional overrides, then hand it to the pipeline factory. Changing a hyper-parameter
means changing it here, or overriding it with `--set name=value` on the CLI.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES_DIR = os.path.join(REPO_ROOT, 'models')
SCHEMA_DIR = os.path.join(REPO_ROOT, 'pipeline', 'schema')


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Paths and hyper-parameters of one pipeline; see `PROFILES` for the presets."""

  profile: str = 'full'
  # Names. Kubeflow's v2 compiler accepts only [a-z0-9-] in pipeline names.
  pipeline_name: str = 'mnist-tfx'
  model_name: str = 'mnist'

  # Where things are. Relative paths are resolved against the working directory.
  data_dir: str = 'data/mnist'
  output_dir: str = 'outputs'

  # Data: the held-out `valid` split carved from the 60k training images, used to
  # pick the best epoch; the 10k test images are the `eval` split, used only by the
  # Evaluator.
  valid_examples: int = 5000
  split_seed: int = 20261124
  image_rows: int = 28
  image_cols: int = 28
  # Keep only the first N examples of each IDX part (None: all). Used by `smoke`.
  max_train_examples: Optional[int] = None
  max_test_examples: Optional[int] = None

  # Apache Beam, for ExampleGen, StatisticsGen, Transform and Evaluator. The local
  # default is the DirectRunner; see kubeflow/ for Dataflow, Flink and Spark.
  beam_direct_running_mode: str = 'in_memory'
  beam_direct_num_workers: int = 0  # 0: one worker per core.
  extra_beam_args: List[str] = dataclasses.field(default_factory=list)

  # Transform: statistics over transformed data cost time and add little for
  # images (they are the pixel statistics again, scaled).
  transform_statistics: bool = False

  enable_cache: bool = True

  # --- derived paths --------------------------------------------------------
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

  @property
  def beam_pipeline_args(self) -> List[str]:
    workers = self.beam_direct_num_workers or (os.cpu_count() or 1)
    return [
        '--runner=DirectRunner',
        f'--direct_running_mode={self.beam_direct_running_mode}',
        f'--direct_num_workers={workers}',
    ] + list(self.extra_beam_args)

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
    ),
}


def load(profile: str = 'full', **overrides: Any) -> PipelineConfig:
  """Returns the named profile with `overrides` applied."""
  if profile not in PROFILES:
    raise ValueError(
        f'unknown profile {profile!r}; choose one of {sorted(PROFILES)}')
  return PROFILES[profile].replace(**overrides)


def parse_override(config: PipelineConfig, assignment: str) -> Dict[str, Any]:
  """Parses `name=value` into {name: value} typed like the config field."""
  name, sep, text = assignment.partition('=')
  fields = {f.name: f for f in dataclasses.fields(config)}
  if not sep or name not in fields:
    raise ValueError(
        f'--set takes name=value with name one of {sorted(fields)}; '
        f'got {assignment!r}')
  current = getattr(config, name)
  if isinstance(current, bool):
    value: Any = text.lower() in ('1', 'true', 'yes', 'on')
  elif isinstance(current, int) or name.startswith('max_'):
    value = None if text.lower() == 'none' else int(text)
  elif isinstance(current, float):
    value = float(text)
  elif isinstance(current, list):
    value = [item for item in text.split(',') if item]
  else:
    value = text
  return {name: value}
