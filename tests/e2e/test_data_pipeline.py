"""IdxExampleGen, validation, the anomaly gate and Transform in a real local pipeline.

Runs TFX's LocalDagRunner with Beam's DirectRunner and SQLite MLMD on small slices
of real MNIST. The whole pipeline runs, with a model small enough that its half
costs seconds; the tests look at the data half.
"""

import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from components import idx
from components.anomaly_gate import DataAnomaliesError
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import mlmd
from tests.testutil.mnist_files import write_slice
from tests.testutil.pipeline_runs import run_validation

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
def data_run(small_mnist_dir, tmp_path_factory):
  config = _config(tmp_path_factory.mktemp('run'), small_mnist_dir)
  times = local_runner.run(config, out=lambda line: None)
  return config, times, {n.node_id: n for n in mlmd.latest_run(config)}


def _uri(nodes, node_id, key):
  return dict(nodes[node_id].outputs)[key].uri


def test_example_gen_writes_splits_of_real_mnist(data_run, small_mnist_dir):
  _, _, nodes = data_run
  uri = _uri(nodes, 'IdxExampleGen', 'examples')
  images, labels = idx.load(small_mnist_dir, 'train')
  valid = idx.split_indices(1200, 200, config_lib.load().split_seed)['valid']
  train, held_out = _read_split(uri, 'train'), _read_split(uri, 'valid')
  assert (len(train), len(held_out)) == (1000, 200)
  evaluation = _read_split(uri, 'eval')
  assert len(evaluation) == 300
  # The held-out split is exactly the seeded choice, byte for byte.
  got = sorted((e.features.feature['label'].int64_list.value[0],
                tuple(e.features.feature['image'].int64_list.value))
               for e in held_out)
  want = sorted((int(labels[i]), tuple(images[i].tolist())) for i in valid)
  assert got == want
  test_images, test_labels = idx.load(small_mnist_dir, 'test')
  assert sorted(e.features.feature['label'].int64_list.value[0]
                for e in evaluation) == sorted(test_labels.tolist())


def test_validation_passes_and_transform_ran(data_run):
  config, times, nodes = data_run
  assert DATA_NODES <= set(nodes)
  assert all(nodes[n].state == 'COMPLETE' for n in DATA_NODES)
  assert set(times) >= {'IdxExampleGen', 'StatisticsGen', 'Transform'}
  transformed = _uri(nodes, 'Transform', 'transformed_examples')
  example = _read_split(transformed, 'eval')[0]
  image = np.array(example.features.feature['image_xf'].float_list.value)
  assert image.shape == (784,) and 0.0 <= image.min() and image.max() <= 1.0
  assert image.max() > 0.5  # a digit, not a blank


def test_rerun_is_cached(data_run):
  config, _, _ = data_run
  seen = []
  local_runner.run(config, out=seen.append)
  assert any('Transform done' in line and '(cached)' in line for line in seen), seen


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
