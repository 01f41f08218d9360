"""Trainer's module file: `run_fn` trains the CNN on Transform's output and exports it.

Hyper-parameters arrive in `custom_config` (a TrainingConfig, chosen by the
pipeline's profile); the best epoch is chosen on the `valid` split, never on the
test images. This folder holds the
trainer's module files only: TFX hashes every file beside a module file to decide
whether a cached Trainer is still valid.
"""

import dataclasses
import json
import os
from typing import List, Optional

from absl import logging
import tensorflow as tf
import tf_keras as keras
import tensorflow_transform as tft
from tfx import v1 as tfx

from models import features
from models.trainer import distribution
from models.trainer import export
from models.trainer import model as model_lib
from models.trainer import multi_worker
from models.trainer import progress
from models.trainer.training_config import TrainingConfig

_SHUFFLE_BUFFER = 60000  # all of MNIST: a full shuffle every epoch
_PARALLELISM = os.cpu_count() or 1  # reading and parsing, before the cache


def make_dataset(file_patterns: List[str], tf_transform_output, batch_size: int,
                 training: bool, whole_batches: bool = False,
                 seed: Optional[int] = None) -> tf.data.Dataset:
  """(image [28, 28, 1], label [1]) batches from transformed TFRecords, cached in memory.

  whole_batches drops a last partial batch: MirroredStrategy fails on a batch it
  cannot split evenly over replicas (seen with logical CPU devices). Training always
  drops it (a different few examples each epoch, as the data is reshuffled). `seed`
  fixes the order of the shuffles.
  """
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  spec = tf_transform_output.transformed_feature_spec()
  dataset = (
      tf.data.TFRecordDataset(files, compression_type='GZIP',
                              num_parallel_reads=_PARALLELISM)
      .batch(1024)
      .map(lambda records: tf.io.parse_example(records, spec),
           num_parallel_calls=_PARALLELISM)
      .unbatch()
      .map(lambda x: (x[features.TRANSFORMED_IMAGE_KEY],
                      x[features.TRANSFORMED_LABEL_KEY]))
      .cache())
  if training:
    dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=seed,
                              reshuffle_each_iteration=True)
  return batched_without_autotuning(
      dataset, batch_size, drop_remainder=training or whole_batches)


def batched_without_autotuning(dataset: tf.data.Dataset, batch_size: int,
                               drop_remainder: bool) -> tf.data.Dataset:
  """Batches of an in-memory dataset, two prefetched, with tf.data autotuning off.

  Everything here is a cheap in-memory copy, and with TF 2.21 each epoch's
  discarded iterator waited for the autotuner's thread to finish its sleep (up to
  a minute, with the CPU idle) before the next epoch could start: about 12 s per
  epoch on average, 120 s in a 10-epoch run.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  # Several training processes (MultiWorkerMirroredStrategy) each read every
  # record and keep their own share of the examples: Transform may write fewer
  # files than there are workers, so the files cannot be what is shared out.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return (dataset.batch(batch_size, drop_remainder=drop_remainder)
          .prefetch(2).with_options(options))


def run_fn(fn_args: tfx.components.FnArgs):
  """Trains and exports the model; called by the TFX Trainer."""
  hp = TrainingConfig(**(fn_args.custom_config or {}).get('training', {}))
  if hp.workers > 1 and not distribution.cluster_workers():
    multi_worker.train_on_local_cluster(fn_args, hp.workers)
    return
  # One seed for Python, NumPy and TensorFlow: weights, dropout, augmentation and
  # (below) the shuffles, so that a run can be repeated.
  keras.utils.set_random_seed(hp.seed)
  strategy = distribution.choose_strategy(hp.mixed_precision)
  global_batch = hp.batch_size * strategy.num_replicas_in_sync

  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  train = make_dataset(fn_args.train_files, tf_transform_output, global_batch,
                       training=True, seed=hp.seed)
  valid = make_dataset(fn_args.eval_files, tf_transform_output, global_batch,
                       training=False,
                       whole_batches=strategy.num_replicas_in_sync > 1)
  steps_per_epoch = sum(1 for _ in train)  # one pass also fills the cache

  with strategy.scope():
    model = model_lib.compile_model(model_lib.build(hp), hp, steps_per_epoch)
  model.summary(print_fn=logging.info)

  best = model_lib.early_stopping(hp)
  history = model.fit(
      train, validation_data=valid, epochs=hp.epochs, verbose=2,
      callbacks=[
          best,
          progress.EpochProgress(hp.epochs),
          keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
      ])

  # Every worker reads the trained weights: batch norm's moving statistics are
  # averaged across the workers as they are read, which takes all of them.
  served = model_lib.averaged(model_lib.float32_twin(model, hp))
  if not distribution.is_chief(strategy):
    return  # It trained with the chief; the chief writes the outputs.
  # What the run report plots: per-epoch curves and the epoch that was kept.
  tf.io.gfile.makedirs(fn_args.model_run_dir)
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, 'history.json'),
                         'w') as f:
    json.dump({'history': history.history, 'best_epoch': best.best_epoch + 1,
               'replicas': strategy.num_replicas_in_sync,
               'workers': max(1, distribution.cluster_workers()),
               'training': dataclasses.asdict(hp)}, f)

  export.export(served, tf_transform_output, fn_args.serving_model_dir)
