"""Parts of the pipeline run on their own, recorded in ML Metadata as a run."""

from components import idx
from pipeline import config as config_lib


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
