"""IdxExampleGen, validation, the anomaly gate and Transform in a real local pipeline.

TFX's LocalDagRunner with Beam's DirectRunner and SQLite MLMD on slices of real
MNIST: the data half of the suite's shared smoke run (tests/conftest.py), and
runs of the first steps alone on data made to fail.
"""

import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from components import atomic_pusher
from components import idx
from components.anomaly_gate import DataAnomaliesError
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import mlmd
from pipeline.reports import run_report
from tests.testutil.mnist_files import write_slice
from tests.testutil.pipeline_runs import changed_in_place
from tests.testutil.pipeline_runs import run_validation

# Runs the pipeline, or reads the shared smoke run.
pytestmark = pytest.mark.pipeline

DATA_NODES = {'IdxExampleGen', 'ImportSchemaGen', 'StatisticsGen',
              'ExampleValidator', 'AnomalyGate', 'Transform'}


def _config(tmp_path, data_dir, **changes):
  settings = dict(data_dir=data_dir, output_dir=str(tmp_path / 'outputs'),
                  max_train_examples=None, max_test_examples=None,
                  valid_examples=200)
  settings.update(changes)
  config = config_lib.load('smoke', **settings)
  # One epoch of a narrow CNN: the model half in seconds.
  return config.replace(
      training=dataclasses.replace(config.training, epochs=1, filters=4))


def _read_split(examples_uri, split):
  files = sorted(glob.glob(os.path.join(examples_uri, f'Split-{split}', '*.gz')))
  assert files, f'no records in {examples_uri}/Split-{split}'
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
  return [tf.train.Example.FromString(r.numpy()) for r in dataset]


@pytest.fixture(scope='module')
def data_run(smoke_pipeline):
  return smoke_pipeline, {n.node_id: n for n in mlmd.latest_run(smoke_pipeline)}


def _uri(nodes, node_id, key):
  return dict(nodes[node_id].outputs)[key].uri


def test_example_gen_writes_splits_of_real_mnist(data_run, mnist_dir):
  config, nodes = data_run
  uri = _uri(nodes, 'IdxExampleGen', 'examples')
  # The smoke profile keeps the first 2000 training and 500 test images.
  images, labels = idx.load(mnist_dir, 'train')
  images, labels = images[:2000], labels[:2000]
  valid = idx.split_indices(2000, 200, config.split_seed)['valid']
  train, held_out = _read_split(uri, 'train'), _read_split(uri, 'valid')
  assert (len(train), len(held_out)) == (1800, 200)
  evaluation = _read_split(uri, 'eval')
  assert len(evaluation) == 500
  # The held-out split is exactly the seeded choice, byte for byte.
  got = sorted((e.features.feature['label'].int64_list.value[0],
                tuple(e.features.feature['image'].int64_list.value))
               for e in held_out)
  want = sorted((int(labels[i]), tuple(images[i].tolist())) for i in valid)
  assert got == want
  _, test_labels = idx.load(mnist_dir, 'test')
  assert sorted(e.features.feature['label'].int64_list.value[0]
                for e in evaluation) == sorted(test_labels[:500].tolist())


def test_validation_passes_and_transform_ran(data_run):
  _, nodes = data_run
  assert DATA_NODES <= set(nodes)
  assert all(nodes[n].state == 'COMPLETE' for n in DATA_NODES)
  transformed = _uri(nodes, 'Transform', 'transformed_examples')
  example = _read_split(transformed, 'eval')[0]
  image = np.array(example.features.feature['image_xf'].float_list.value)
  assert image.shape == (784,) and 0.0 <= image.min() and image.max() <= 1.0
  assert image.max() > 0.5  # a digit, not a blank


def test_rerun_is_cached_and_pushes_nothing(smoke_pipeline):
  with changed_in_place(smoke_pipeline) as config:
    seen = []
    local_runner.run(config, out=seen.append)
    for step in ('IdxExampleGen', 'Transform', 'Trainer'):
      assert any(f'{step} done' in line and '(cached)' in line
                 for line in seen), (step, seen)
    summary = run_report.summarize(config)
    assert summary.pushed and not summary.pushed_new_version
    assert atomic_pusher.versions(config.model_base_path) == [1]


def test_gate_stops_pipeline_on_anomalies(mnist_dir, tmp_path):
  # 14x14 digits, accepted by an IdxExampleGen told to expect them, but the
  # schema wants 784 pixels: ExampleValidator flags it and the gate must stop the
  # run.
  data_dir = write_slice(mnist_dir, str(tmp_path / 'small14'), train=300,
                         test=100, downscale=2)
  config = _config(tmp_path, data_dir, valid_examples=50)
  with pytest.raises(DataAnomaliesError) as info:
    run_validation(config, image_shape=(14, 14))
  message = str(info.value)
  assert "train: feature 'image'" in message and 'shape' in message.lower()
  assert 'ExampleValidator' in [n.node_id for n in mlmd.latest_run(config)]
  # In the pipeline itself, Transform (and all after it) waits for the gate.
  transform = {c.id: c for c in local_runner.build(config).components}['Transform']
  assert 'AnomalyGate' in {node.id for node in transform.upstream_nodes}


def test_bad_idx_file_fails_example_gen_with_its_name(mnist_dir, tmp_path):
  data_dir = write_slice(mnist_dir, str(tmp_path / 'bad'), train=100, test=50)
  path = os.path.join(data_dir, 't10k-images-idx3-ubyte')
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) - 392)
  config = _config(tmp_path, data_dir, valid_examples=10)
  with pytest.raises(idx.IdxFormatError,
                     match='t10k-images-idx3-ubyte: header says 50 images but '
                     'file holds 49.5'):
    local_runner.run(config, out=lambda line: None)
