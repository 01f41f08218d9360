"""The pipeline factory: every runner (local, Kubeflow) builds the pipeline here.

Data flows top to bottom:
  IDX files -> IdxExampleGen -> StatisticsGen -> ExampleValidator (against the curated
  schema from ImportSchemaGen) -> AnomalyGate -> Transform -> Trainer -> Evaluator
  (against the last blessed model) + InfraValidator (the model loads and answers in
  a model server) -> Pusher -> TF Serving's model base path.
"""

import dataclasses
import os
from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.proto import config_pb2 as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import infra_validator_pb2
from tfx.proto import transform_pb2

from components import atomic_pusher
from components import idx
from components import infra_validator as infra_validator_lib
from components.anomaly_gate import AnomalyGate
from components.idx_example_gen import IdxExampleGen
from models import features
from models import serving_contract as contract
from pipeline import config as config_lib

TRANSFORM_MODULE = os.path.join(
    config_lib.MODULES_DIR, 'transform', 'mnist_transform.py')
TRAINER_MODULE = os.path.join(
    config_lib.MODULES_DIR, 'trainer', 'mnist_trainer.py')
SCHEMA_FILE = os.path.join(config_lib.SCHEMA_DIR, 'schema.pbtxt')
INFRA_VALIDATOR_ID = 'InfraValidator'  # the same node id locally and on Kubeflow
# Requests from this many test examples per signature; a few suffice to prove
# the model answers, and keep the check to seconds.
INFRA_VALIDATION_EXAMPLES = 4
# TFX's request builder makes requests from serialized tf.Examples only, so on a
# serving platform `predict_images` (float pixels) is left out; the local
# validator calls every signature.
EXAMPLE_SIGNATURES = [contract.DEFAULT_SIGNATURE, contract.CLASSIFY_SIGNATURE]


def create_pipeline(
    config: config_lib.PipelineConfig,
    pipeline_root: str,
    data_dir: str,
    serving_root: str,
    metadata_connection_config: Optional[
        metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Optional[List[str]] = None,
    model_server: Optional[infra_validator_pb2.ServingSpec] = None,
) -> tfx.dsl.Pipeline:
  """Builds the MNIST pipeline from `config`; paths and orchestration come from the runner.

  serving_root: TF Serving's model root; the Pusher writes versions under
    serving_root/<model_name>/.
  model_server: where the InfraValidator serves the candidate: None for
    `mnist-tfx serve` on this machine (components/infra_validator.py), or a
    ServingSpec with a serving binary and platform for TFX's own InfraValidator
    (the Kubeflow runner: tensorflow/serving on Kubernetes).
  """
  # Reads the four IDX files, validates their headers and writes train/valid/eval.
  example_gen = IdxExampleGen(
      input_base=data_dir,
      valid_examples=config.valid_examples,
      split_seed=config.split_seed,
      max_train_examples=config.max_train_examples,
      max_test_examples=config.max_test_examples)

  # The schema is curated and versioned with the code, not inferred from the data
  # it is meant to check.
  schema_gen = tfx.components.ImportSchemaGen(schema_file=SCHEMA_FILE)

  # Pixel and label statistics of every split: what validation compares to the
  # schema (which also tells TFDV that the label is categorical).
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'])

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
          analyze=['train'], transform=idx.split_names(config.valid_examples)),
      disable_statistics=not config.transform_statistics)
  transform.add_upstream_node(anomaly_gate)

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=pipeline_root,
      components=[
          example_gen, schema_gen, statistics_gen, example_validator,
          anomaly_gate, transform,
          *_model_components(config, example_gen, transform, serving_root,
                             model_server)
      ],
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)


def _model_components(config, example_gen, transform, serving_root,
                      model_server):
  """Trainer -> baseline Resolver -> Evaluator + InfraValidator -> Pusher."""
  # Trains on `train`, keeps the best epoch on `valid`; never sees `eval`.
  trainer = tfx.components.Trainer(
      module_file=TRAINER_MODULE,
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      train_args=tfx.proto.TrainArgs(splits=['train']),
      eval_args=tfx.proto.EvalArgs(
          splits=[idx.selection_split(config.valid_examples)]),
      custom_config={'training': dataclasses.asdict(config.training)})

  # The last blessed model, if any: the candidate must not be worse than it.
  baseline = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id('latest_blessed_model_resolver')

  # Test-set accuracy overall and per digit, judged against thresholds and baseline.
  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      baseline_model=baseline.outputs['model'],
      example_splits=['eval'],
      eval_config=eval_config(config.evaluation))

  # Accuracy says nothing of whether a model server can load and answer the
  # model: it must do both, with the answers of the model itself, to be pushed.
  infra_validator = _infra_validator(config, trainer, example_gen, model_server)

  # Only a model blessed by both reaches TF Serving, atomically and never twice.
  pusher = tfx.components.Pusher(
      model=trainer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      infra_blessing=infra_validator.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=os.path.join(serving_root, config.model_name))),
      custom_executor_spec=executor_spec.ExecutorClassSpec(
          atomic_pusher.Executor))
  return [trainer, baseline, evaluator, infra_validator, pusher]


def _infra_validator(config, trainer, example_gen, model_server):
  """TFX's InfraValidator on `model_server`'s platform, or the LocalInfraValidator
  (`mnist-tfx serve` on this machine) when it names none; requests from the test
  split either way."""
  serving_spec = infra_validator_pb2.ServingSpec()
  if model_server is not None:
    serving_spec.CopyFrom(model_server)
  serving_spec.model_name = config.model_name
  on_platform = bool(serving_spec.WhichOneof('serving_platform'))
  component = (infra_validator_lib.InfraValidator if on_platform
               else infra_validator_lib.LocalInfraValidator)
  return component(
      model=trainer.outputs['model'],
      examples=example_gen.outputs['examples'],
      serving_spec=serving_spec,
      validation_spec=tfx.proto.ValidationSpec(
          max_loading_time_seconds=300, num_tries=3),
      request_spec=tfx.proto.RequestSpec(
          tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
              signature_names=EXAMPLE_SIGNATURES if on_platform else []),
          split_name='eval',
          num_examples=INFRA_VALIDATION_EXAMPLES),
  ).with_id(INFRA_VALIDATOR_ID)


def eval_config(evaluation: config_lib.EvaluationConfig) -> tfma.EvalConfig:
  """Accuracy on the test split, overall and per digit; the thresholds apply to the
  overall figure (a per-digit floor would be a different policy). The confusion
  matrix (true digit x predicted digit) is for people: the run report draws it."""
  overall = tfma.SlicingSpec()
  threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(
          lower_bound={'value': evaluation.min_accuracy}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.HIGHER_IS_BETTER,
          absolute={'value': -evaluation.max_accuracy_drop}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name=contract.DEFAULT_SIGNATURE,
          label_key=features.LABEL_KEY,
          prediction_key=contract.PROBABILITIES_OUTPUT)],
      slicing_specs=[overall, tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(
              class_name='SparseCategoricalAccuracy',
              per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                  slicing_specs=[overall], threshold=threshold)]),
          tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
      ])])
