"""The Trainer's input pipeline, on the examples the smoke pipeline's Transform wrote."""

import os

import numpy as np
import pytest

from models import features
from pipeline import mlmd


@pytest.fixture(scope='module')
def transform_outputs(smoke_pipeline):
  """(train file pattern, valid file pattern, TFTransformOutput) of the smoke run."""
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  outputs = dict(mlmd.latest_outputs(smoke_pipeline)['Transform'])
  examples = outputs['transformed_examples']
  return (os.path.join(examples, 'Split-train', '*'),
          os.path.join(examples, 'Split-valid', '*'),
          tft.TFTransformOutput(outputs['transform_graph']))


def _labels(dataset) -> np.ndarray:
  return np.concatenate([labels.numpy().ravel() for _, labels in dataset])


def test_training_batches_are_whole_and_shaped_for_the_cnn(transform_outputs):
  from models.trainer import mnist_trainer  # pylint: disable=g-import-not-at-top
  train, _, output = transform_outputs
  batches = list(mnist_trainer.make_dataset([train], output, 32, training=True,
                                            seed=0))
  images, labels = batches[0]
  assert images.shape == (32, features.IMAGE_ROWS, features.IMAGE_COLS, 1)
  assert labels.shape == (32, 1)
  assert all(len(batch_labels) == 32 for _, batch_labels in batches)
  assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0


def test_the_seed_fixes_the_order_and_each_epoch_reshuffles(transform_outputs):
  from models.trainer import mnist_trainer  # pylint: disable=g-import-not-at-top
  train, _, output = transform_outputs

  def dataset(seed):
    return mnist_trainer.make_dataset([train], output, 32, training=True,
                                      seed=seed)

  first, same = dataset(0), dataset(0)
  epoch_1, epoch_2 = _labels(first), _labels(first)
  np.testing.assert_array_equal(epoch_1, _labels(same))
  assert not np.array_equal(epoch_1, epoch_2)
  assert not np.array_equal(epoch_1, _labels(dataset(1)))


def test_validation_keeps_every_example_in_order(transform_outputs):
  from models.trainer import mnist_trainer  # pylint: disable=g-import-not-at-top
  _, valid, output = transform_outputs
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  records = tf.data.TFRecordDataset(tf.io.gfile.glob(valid),
                                    compression_type='GZIP')
  dataset = mnist_trainer.make_dataset([valid], output, 32, training=False)
  labels = _labels(dataset)
  assert len(labels) == sum(1 for _ in records)  # the last, partial batch too
  np.testing.assert_array_equal(labels, _labels(dataset))


def test_no_tf_data_autotuning_between_epochs(transform_outputs):
  """With autotuning on, TF 2.21 made each epoch wait for the autotuner's thread
  when it discarded the previous epoch's iterator (about 12 s per epoch)."""
  from models.trainer import mnist_trainer  # pylint: disable=g-import-not-at-top
  train, valid, output = transform_outputs
  for pattern, training in ((train, True), (valid, False)):
    dataset = mnist_trainer.make_dataset([pattern], output, 32, training=training)
    assert dataset.options().autotune.enabled is False
