"""Pipeline runs the tests share or make: the smoke run as a user starts it, a way
to change a run and put it back, and the pipeline's first steps on their own."""

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

from components import idx
from pipeline import config as config_lib


@dataclasses.dataclass(frozen=True)
class CliRun:
  """`mnist-tfx run` in its own process, and a second run on the same output
  directory started while the first was inside the pipeline."""
  config: config_lib.PipelineConfig
  returncode: int
  out: str
  err: str
  second_returncode: int
  second_output: str


def _start(args, cwd):
  env = dict(os.environ, PYTHONPATH=config_lib.REPO_ROOT)
  return subprocess.Popen([sys.executable, '-m', 'pipeline.cli', *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def run_from_cli(profile: str, data_dir: str, workdir: str) -> CliRun:
  """Runs `mnist-tfx run --profile PROFILE` on `data_dir` into workdir/out, and
  starts a second one on the same output directory once the first prints its
  first step (the run lock must refuse it)."""
  output_dir = os.path.join(workdir, 'out')
  args = ['run', '--profile', profile, '--data-dir', data_dir,
          '--output-dir', output_dir]
  first = _start(args, workdir)
  lines = []
  for line in first.stdout:  # until the first run is inside the pipeline
    lines.append(line)
    if line.startswith('[1/'):
      break
  second = _start(args, workdir)
  second_out, second_err = second.communicate(timeout=120)
  rest, first_err = first.communicate(timeout=900)
  return CliRun(
      config=config_lib.load(profile, data_dir=data_dir, output_dir=output_dir),
      returncode=first.returncode, out=''.join(lines) + rest, err=first_err,
      second_returncode=second.returncode,
      second_output=(second_out + second_err).strip())


@contextlib.contextmanager
def changed_in_place(config: config_lib.PipelineConfig
                     ) -> Iterator[config_lib.PipelineConfig]:
  """Lets a test run the pipeline again on config's run, then puts the run back
  as it was, so that the run other tests share is the same whatever their order.

  The run is copied aside and restored, rather than changed as a copy elsewhere:
  TFX keys its cache on the pipeline root's path (the user-code wheels of
  Transform and the Trainer live under it), so only a rerun at the same path can
  take the steps it did not change from the cache, as a user's rerun does.
  """
  output_dir = config.abs_output_dir
  aside = tempfile.mkdtemp(prefix='.kept-', dir=os.path.dirname(output_dir))
  kept = os.path.join(aside, 'run')
  shutil.copytree(output_dir, kept, symlinks=True)
  try:
    yield config
  finally:
    shutil.rmtree(output_dir)
    os.rename(kept, output_dir)
    shutil.rmtree(aside)


def run_validation(config: config_lib.PipelineConfig,
                   image_shape=idx.IMAGE_SHAPE) -> None:
  """The pipeline's first steps alone, recorded in config's ML Metadata as a run of
  the pipeline: IdxExampleGen (expecting `image_shape`) on config's data,
  ImportSchemaGen, StatisticsGen, ExampleValidator and AnomalyGate. Raises
  DataAnomaliesError when the gate stops the run."""
  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx
  from components.anomaly_gate import AnomalyGate
  from components.idx_example_gen import IdxExampleGen
  from pipeline import local_runner
  from pipeline import pipeline as pipeline_lib
  example_gen = IdxExampleGen(
      input_base=config.abs_data_dir, valid_examples=config.valid_examples,
      split_seed=config.split_seed, image_shape=image_shape,
      max_train_examples=config.max_train_examples,
      max_test_examples=config.max_test_examples)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=pipeline_lib.SCHEMA_FILE)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'], schema=schema_gen.outputs['schema'])
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema'])
  gate = AnomalyGate(anomalies=example_validator.outputs['anomalies'])
  tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
      components=[example_gen, schema_gen, statistics_gen, example_validator, gate],
      metadata_connection_config=local_runner.metadata_config(config),
      beam_pipeline_args=config.beam.pipeline_args()))
