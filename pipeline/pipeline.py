"""The pipeline factory: every runner (local, Kubeflow) builds the pipeline here.

Data flows top to bottom:
  IDX files -> IdxExampleGen -> StatisticsGen -> ExampleValidator (against the curated
  schema from ImportSchemaGen) -> AnomalyGate -> Transform -> ...
"""

import os
from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.proto import transform_pb2

from components.anomaly_gate import AnomalyGate
from components.idx_example_gen import IdxExampleGen
from pipeline import config as config_lib

TRANSFORM_MODULE = os.path.join(
    config_lib.MODULES_DIR, 'transform', 'mnist_transform.py')
SCHEMA_FILE = os.path.join(config_lib.SCHEMA_DIR, 'schema.pbtxt')


def create_pipeline(
    config: config_lib.PipelineConfig,
    pipeline_root: str,
    data_dir: str,
    metadata_connection_config: Optional[
        metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Optional[List[str]] = None,
) -> tfx.dsl.Pipeline:
  """Builds the MNIST pipeline from `config`; paths and orchestration come from the runner."""
  # Reads the four IDX files, validates their headers and writes train/valid/eval.
  example_gen = IdxExampleGen(
      input_base=data_dir,
      valid_examples=config.valid_examples,
      split_seed=config.split_seed,
      image_shape=(config.image_rows, config.image_cols),
      max_train_examples=config.max_train_examples,
      max_test_examples=config.max_test_examples)

  # Pixel and label statistics of every split: what validation compares to the schema.
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'])

  # The schema is curated and versioned with the code, not inferred from the data
  # it is meant to check.
  schema_gen = tfx.components.ImportSchemaGen(schema_file=SCHEMA_FILE)

  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema'])

  # ExampleValidator only records anomalies; this stops the run on them.
  anomaly_gate = AnomalyGate(anomalies=example_validator.outputs['anomalies'])

  # Scaling learned nowhere but fixed, in a graph shared by training and serving.
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      module_file=TRANSFORM_MODULE,
      splits_config=transform_pb2.SplitsConfig(
          analyze=['train'], transform=_split_names(config)),
      disable_statistics=not config.transform_statistics)
  transform.add_upstream_node(anomaly_gate)

  components = [
      example_gen, statistics_gen, schema_gen, example_validator, anomaly_gate,
      transform
  ]
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)


def _split_names(config: config_lib.PipelineConfig) -> List[str]:
  return ['train', 'valid', 'eval'] if config.valid_examples else ['train', 'eval']
