"""Shared fixtures: real MNIST (fetched once) and small slices of it."""

import os

import numpy as np
import pytest

from components import idx
from pipeline import config as config_lib
from pipeline import data

MNIST_DIR = os.path.join(config_lib.REPO_ROOT, 'data', 'mnist')


@pytest.fixture(scope='session')
def mnist_dir() -> str:
  """The full MNIST IDX files, fetched and checksum-verified on first use."""
  data.ensure(MNIST_DIR)
  return MNIST_DIR


def write_slice(source_dir: str, target_dir: str, train: int, test: int,
                gzipped: bool = False, downscale: int = 1) -> str:
  """Writes the first `train`/`test` real MNIST examples as IDX files, every
  `downscale`th row and column of each image (2: 14x14 digits)."""
  os.makedirs(target_dir, exist_ok=True)
  suffix = '.gz' if gzipped else ''
  for part, count in (('train', train), ('test', test)):
    images, labels = idx.load(source_dir, part)
    images_name, labels_name = idx.FILE_NAMES[part]
    idx.write(os.path.join(target_dir, images_name + suffix),
              images[:count].reshape(-1, *idx.IMAGE_SHAPE)[:, ::downscale,
                                                            ::downscale])
    idx.write(os.path.join(target_dir, labels_name + suffix), labels[:count])
  return target_dir


@pytest.fixture(scope='session')
def small_mnist_dir(mnist_dir, tmp_path_factory) -> str:
  """1200 train and 300 test images of real MNIST, gzipped like the classic files."""
  return write_slice(mnist_dir, str(tmp_path_factory.mktemp('small_mnist')),
                     train=1200, test=300, gzipped=True)


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
      beam_pipeline_args=config.beam_pipeline_args))


def images_of(count: int, rows: int = 28, cols: int = 28, seed: int = 0):
  return np.random.default_rng(seed).integers(
      0, 256, size=(count, rows, cols), dtype=np.uint8)


@pytest.fixture(scope='session')
def smoke_pipeline(mnist_dir, tmp_path_factory):
  """The smoke profile run once on real MNIST: its config, after the run.

  Its first pushed version, <model_base_path>/1, is the model the serving tests
  serve (a real model trained by the pipeline, with the pushed signatures).
  """
  from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  config = config_lib.load('smoke', data_dir=mnist_dir,
                           output_dir=str(tmp_path_factory.mktemp('smoke')))
  local_runner.run(config, out=lambda line: None)
  return config


@pytest.fixture(scope='session')
def smoke_model_version(smoke_pipeline) -> str:
  """The version directory the smoke run pushed."""
  path = os.path.join(smoke_pipeline.model_base_path, '1')
  assert os.path.exists(os.path.join(path, 'saved_model.pb')), path
  return path
