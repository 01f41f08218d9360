"""Profiles and --set overrides of the one configuration object."""

import dataclasses
import pytest

from models import serving_contract as contract
from pipeline import config as config_lib


def test_profiles_differ_where_they_should():
  full, smoke = config_lib.load('full'), config_lib.load('smoke')
  assert full.max_train_examples is None and smoke.max_train_examples == 2000
  assert smoke.training.epochs < full.training.epochs
  assert full.evaluation.min_accuracy == 0.99
  assert full.model_base_path.endswith('/serving/mnist')


def test_the_reference_profile_keeps_the_recipe_the_default_replaced():
  full, reference = config_lib.load('full'), config_lib.load('reference')
  assert (reference.training.architecture, reference.training.epochs,
          reference.training.batch_size, reference.training.learning_rate,
          reference.training.mixed_precision) == ('reference', 20, 128, 2e-3,
                                                  False)
  # Its augmentation too: one chain of Keras layers, where the default gives
  # each network its own distortion, resampled once.
  assert reference.training.augmentation == 'shared_chain'
  assert full.training.augmentation == 'per_member'
  # And its dropout of single activations, where the default drops channels.
  assert (reference.training.spatial_dropout, full.training.spatial_dropout) == (
      False, True)
  assert (full.training.architecture, full.training.mixed_precision) == (
      'compact', True)
  assert full.training.epochs < reference.training.epochs
  # The reference sees the whole 28x28 image, as it was measured.
  assert (reference.training.crop, full.training.crop) == (0, 2)
  assert reference.output_dir != full.output_dir  # their models never mix
  assert reference.evaluation == full.evaluation


def test_overrides_are_typed_and_reach_nested_fields():
  config = config_lib.load('smoke')
  for assignment in ('training.epochs=7', 'training.augment=false',
                     'evaluation.max_accuracy_drop=0.002',
                     'max_test_examples=none', 'valid_examples=100',
                     'beam.extra_args=--a=1,--b=2'):
    config = config_lib.apply_override(config, assignment)
  assert config.training.epochs == 7 and config.training.augment is False
  assert config.evaluation.max_accuracy_drop == 0.002
  assert config.max_test_examples is None and config.valid_examples == 100
  assert config.beam.extra_args == ['--a=1', '--b=2']
  assert config_lib.load('smoke').training.epochs == 3  # profiles untouched


@pytest.mark.parametrize('assignment', ['training.nope=1', 'epochs=3', 'noequals'])
def test_unknown_or_malformed_overrides_are_rejected(assignment):
  with pytest.raises(ValueError, match='--set takes name=value'):
    config_lib.apply_override(config_lib.load(), assignment)


def test_unknown_profile():
  with pytest.raises(ValueError, match="unknown profile 'huge'"):
    config_lib.load('huge')


def test_the_pushed_model_is_named_as_the_serving_contract_names_it():
  """PipelineConfig.model_name's default and contract.MODEL_NAME (what clients ask
  for and `mnist-tfx serve` serves) are one name, spelt twice until config.py
  reads it from models/serving_contract.py."""
  assert config_lib.PipelineConfig.model_name == contract.MODEL_NAME


def test_beam_arguments_per_runner():
  beam = config_lib.BeamConfig
  assert beam().pipeline_args() == ['--runner=DirectRunner',
                                    '--direct_running_mode=in_memory']
  assert beam(runner='flink', job_endpoint='h:1', worker_pool='p:2',
              parallelism=3, extra_args=['--x=1'],
              stage_runner_jars=True).pipeline_args() == [
                  '--runner=PortableRunner', '--job_endpoint=h:1',
                  '--environment_type=EXTERNAL', '--environment_config=p:2',
                  '--parallelism=3', '--x=1']
  # The local clusters' job servers ship no jars: their workers hold them.
  nothing_to_stage = ('--pipeline_resources_detector_factory_class='
                      'org.mnisttfx.beam.NothingToStage')
  for runner in ('flink', 'spark'):
    assert nothing_to_stage in beam(runner=runner).pipeline_args()
  # Beam's own job server images on Kubernetes ship them (Beam's default).
  kubeflow_flink = dataclasses.replace(config_lib.KubeflowConfig().beam,
                                       runner='flink')
  assert nothing_to_stage not in kubeflow_flink.pipeline_args()
  # Spark has no --parallelism; its cores decide.
  assert not any(a.startswith('--parallelism')
                 for a in beam(runner='spark').pipeline_args())
  assert beam(runner='dataflow', extra_args=['--project=p']).pipeline_args() == [
      '--runner=DataflowRunner', '--project=p']
  with pytest.raises(ValueError, match="beam.runner='storm'"):
    beam(runner='storm').pipeline_args()
  config = config_lib.apply_override(config_lib.load('smoke'), 'beam.runner=spark')
  assert config.beam.runner == 'spark'
