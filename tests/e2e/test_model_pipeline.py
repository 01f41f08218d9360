"""Trainer, baseline Resolver, Evaluator, InfraValidator and Pusher in real local
pipeline runs.

The suite's shared smoke run (tests/conftest.py) is blessed and pushed. Tests that
run again do so on a copy of it (same metadata store, data steps from the cache):
a barely trained candidate must not be blessed against the first as baseline, a
model that cannot serve must not be pushed, and either leaves the serving
directory as it was.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from components import atomic_pusher
from components import idx
from models import features
from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import mlmd
from pipeline import pipeline as pipeline_lib
from pipeline.reports import run_report
from tests.testutil.pipeline_runs import changed_in_place

# Runs the pipeline, or reads the shared smoke run.
pytestmark = pytest.mark.pipeline


def _node(config, node_id):
  return {n.node_id: n for n in mlmd.latest_run(config)}[node_id]


def _input_artifact_ids(config, node_id, key):
  """IDs of the artifacts `node_id` read under `key` in the latest run."""
  store = mlmd.open_store(config)
  run = max(store.get_contexts_by_type('pipeline_run'),
            key=lambda c: c.create_time_since_epoch)
  for execution in store.get_executions_by_context(run.id):
    contexts = store.get_contexts_by_execution(execution.id)
    if any(c.name == f'{config.pipeline_name}.{node_id}' for c in contexts):
      return [e.artifact_id
              for e in store.get_events_by_execution_ids([execution.id])
              if e.type == e.INPUT and e.path.steps[0].key == key]
  raise AssertionError(f'{node_id} did not run')


@pytest.fixture(scope='module')
def first_run(smoke_pipeline):
  return smoke_pipeline, run_report.summarize(smoke_pipeline)


def test_first_run_is_blessed_and_pushed_as_version_1(first_run):
  config, summary = first_run
  assert summary.evaluation.baseline is None
  assert summary.evaluation.blessed, summary.evaluation.failures
  assert summary.evaluation.candidate >= config.evaluation.min_accuracy
  assert sorted(summary.evaluation.per_digit) == list(range(10))
  # TFMA's confusion matrix of the same test split agrees with its accuracy.
  matrix = summary.evaluation.confusion_matrix
  assert matrix.shape == (10, 10) and matrix.sum() == config.max_test_examples
  assert np.trace(matrix) / matrix.sum() == pytest.approx(
      summary.evaluation.candidate, abs=1e-6)
  assert summary.pushed and summary.pushed_version == '1'
  assert atomic_pusher.versions(config.model_base_path) == [1]


def test_pushed_directory_is_what_tf_serving_loads(first_run):
  config, _ = first_run
  base = config.model_base_path
  assert sorted(os.listdir(base)) == ['1']  # no staging directory left behind
  version_dir = os.path.join(base, '1')
  assert os.path.exists(os.path.join(version_dir, 'saved_model.pb'))
  assert os.path.exists(os.path.join(version_dir, 'variables',
                                     'variables.index'))
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  signatures = saved_model.meta_graphs[0].signature_def
  assert set(signatures) >= {'serving_default', 'predict_images', 'classify'}
  assert signatures['classify'].method_name == 'tensorflow/serving/classify'
  assert signatures['predict_images'].method_name == 'tensorflow/serving/predict'
  assert list(signatures['predict_images'].inputs) == ['images']
  assert list(signatures['predict_images'].outputs) == ['scores']


def test_signatures_agree_on_the_same_images(first_run, mnist_dir):
  config, _ = first_run
  model = tf.saved_model.load(os.path.join(config.model_base_path, '1'))
  images, labels = idx.load(mnist_dir, 'test')
  images, labels = images[:64], labels[:64]
  serialized = tf.constant(
      [features.example(row.tolist(), int(label)).SerializeToString()
       for row, label in zip(images, labels)])
  by_example = model.signatures['serving_default'](examples=serialized)
  by_image = model.signatures['predict_images'](
      images=tf.constant(images.astype(np.float32) / 255.0))
  by_classify = model.signatures['classify'](inputs=serialized)
  probabilities = by_example['probabilities'].numpy()
  assert probabilities.shape == (64, 10)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(by_image['scores'].numpy(), probabilities,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(by_classify['scores'].numpy(), probabilities,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(by_example['classes'].numpy(),
                                probabilities.argmax(axis=1))
  assert by_classify['classes'].numpy()[0].tolist() == [
      str(d).encode() for d in range(10)]
  # Better than chance on real digits: the model learned something.
  assert (probabilities.argmax(axis=1) == labels).mean() > 0.5


def test_worse_candidate_is_not_blessed_against_the_baseline(first_run):
  config, first = first_run
  first_model_id = dict(_node(config, 'Trainer').outputs)['model'].id
  # The same data (its steps come from the cache) and a network that barely
  # moves from its initial weights, with no absolute floor: only the comparison
  # with the baseline can stop this model.
  worse = config.replace(
      training=dataclasses.replace(config.training, epochs=1, filters=2,
                                   learning_rate=1e-5),
      evaluation=config_lib.EvaluationConfig(min_accuracy=0.0,
                                             max_accuracy_drop=0.01))
  with changed_in_place(worse):
    local_runner.run(worse, out=lambda line: None)
    summary = run_report.summarize(worse)
    assert summary.evaluation.baseline == pytest.approx(
        first.evaluation.candidate, abs=1e-6)
    assert summary.evaluation.candidate < summary.evaluation.baseline - 0.01
    assert not summary.evaluation.blessed
    assert any('change vs baseline' in f for f in summary.evaluation.failures)
    assert summary.pushed is False
    assert atomic_pusher.versions(worse.model_base_path) == [1]
    assert _input_artifact_ids(worse, 'Evaluator', 'baseline_model') == [
        first_model_id]


def test_a_blessed_model_that_cannot_serve_is_not_pushed(first_run, monkeypatch):
  config, _ = first_run
  from models.trainer import export  # pylint: disable=g-import-not-at-top
  original = export.export

  def export_with_a_broken_signature(model, tf_transform_output, directory):
    original(model, tf_transform_output, directory)
    # A slip in the exporter: predict_images (float pixels) marked as a Classify
    # signature, which takes tf.Examples. TensorFlow loads the model and the
    # Evaluator (serving_default) blesses it; a model server cannot answer it.
    export._set_method_name(directory, contract.IMAGES_SIGNATURE,  # pylint: disable=protected-access
                            contract.CLASSIFY_METHOD)

  monkeypatch.setattr(export, 'export', export_with_a_broken_signature)
  # A new Trainer run (one epoch), judged leniently: the Evaluator blesses it.
  broken = config.replace(
      training=dataclasses.replace(config.training, epochs=1),
      evaluation=config_lib.EvaluationConfig(min_accuracy=0.0,
                                             max_accuracy_drop=1.0))
  with changed_in_place(broken):
    local_runner.run(broken, out=lambda line: None)
    summary = run_report.summarize(broken)
    assert summary.evaluation.blessed, summary.evaluation.failures
    infra = summary.infra_validation
    assert not infra.blessed
    assert "signature 'predict_images' (Classify) failed in the model server" in (
        infra.reason)
    assert summary.pushed is False
    assert atomic_pusher.versions(broken.model_base_path) == [1]
    lines = run_report.format_summary(summary)
    assert f'infra validation: FAILED ({infra.reason})' in lines
    assert ('not pushed (failed infra validation): the serving directory is '
            'unchanged') in lines


def test_the_pushed_model_passed_infra_validation(first_run):
  _, summary = first_run
  infra = summary.infra_validation
  assert infra.blessed, infra.reason
  assert infra.signatures == ['classify', 'predict_images', 'serving_default']
  assert infra.requests == 3 * pipeline_lib.INFRA_VALIDATION_EXAMPLES
  assert (f'infra validation: passed (3 signatures, {infra.requests} requests)'
          in run_report.format_summary(summary))


def test_report_has_pictures_and_lineage_reaches_the_idx_files(first_run):
  config, summary = first_run
  folder = run_report.write(config, summary)
  for picture in ('training_curves.png', 'confusion_matrix.png',
                  'misclassified.png'):
    with open(os.path.join(folder, picture), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  lines = mlmd.serving_lineage(config)
  text = '\n'.join(lines)
  assert lines[0].startswith(os.path.join(config.model_base_path, '1'))
  for step in ('Pusher', 'Trainer', 'Transform', 'ImportSchemaGen',
               'IdxExampleGen', 'Evaluator'):
    assert f'<- {step} (' in text, text
  assert f'input_base: {config.abs_data_dir}' in text


_MIRRORED_SCRIPT = '''
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfx.components.trainer import fn_args_utils
from models.trainer import distribution, mnist_trainer
strategy = distribution.choose_strategy()
assert isinstance(strategy, tf.distribute.MirroredStrategy), strategy
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
examples, graph, out = sys.argv[1:4]
mnist_trainer.run_fn(fn_args_utils.FnArgs(
    train_files=[examples + "/Split-train/*"],
    eval_files=[examples + "/Split-valid/*"],
    transform_output=graph, serving_model_dir=out + "/serving",
    model_run_dir=out + "/run",
    custom_config={"training": {"epochs": 1, "filters": 4, "batch_size": 64,
                                "augment": False}}))
print("REPLICAS", strategy.num_replicas_in_sync)
'''


def test_mirrored_strategy_on_two_logical_cpus_trains_and_exports(
    first_run, tmp_path):
  config, _ = first_run
  transform = dict(_node(config, 'Transform').outputs)
  result = subprocess.run(
      [sys.executable, '-c', _MIRRORED_SCRIPT,
       transform['transformed_examples'].uri, transform['transform_graph'].uri,
       str(tmp_path)],
      capture_output=True, text=True, timeout=300, check=False,
      cwd=config_lib.REPO_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'REPLICAS 2' in result.stdout
  history = (tmp_path / 'run' / 'history.json').read_text()
  assert '"replicas": 2' in history
  model = tf.saved_model.load(str(tmp_path / 'serving'))
  scores = model.signatures['predict_images'](images=tf.zeros([3, 784]))['scores']
  assert scores.shape == (3, 10)
  # Trained in mixed precision where the CPU has bfloat16, served in float32.
  assert '"mixed_precision": true' in history
  assert _conv_dtypes(tmp_path / 'serving') == {'float32'}


def _conv_dtypes(saved_model_dir):
  """The dtypes the exported model's convolutions compute in."""
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString((saved_model_dir / 'saved_model.pb').read_bytes())
  return {tf.dtypes.as_dtype(node.attr['T'].type).name
          for function in saved_model.meta_graphs[0].graph_def.library.function
          for node in function.node_def if node.op == 'Conv2D'}
