"""Choosing where to train: TPU, all GPUs, or the CPU."""

import glob
import os

from absl import logging
import tensorflow as tf
import tf_keras as keras


def _tpu_present() -> bool:
  """A TPU VM exposes /dev/accel*; a TPU node is named in TPU_NAME. Checking first
  keeps the resolver from probing the cloud metadata server on other machines."""
  return bool(os.environ.get('TPU_NAME') or glob.glob('/dev/accel*'))


def choose_strategy(mixed_precision: bool = False) -> tf.distribute.Strategy:
  """TPUStrategy when a TPU is found, MirroredStrategy over all GPUs (or over
  several logical CPU devices, as tests set up), else the default strategy.

  Mixed precision (float16 compute, float32 variables) is turned on only on GPU,
  where it pays; the softmax output stays float32 (see model.py's Dense).
  """
  if _tpu_present():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    logging.info('Training on TPU %s', resolver.master())
    return tf.distribute.TPUStrategy(resolver)
  gpus = tf.config.list_logical_devices('GPU')
  if gpus:
    if mixed_precision:
      keras.mixed_precision.set_global_policy('mixed_float16')
    logging.info('Training on %d GPU(s) with MirroredStrategy', len(gpus))
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  cpus = tf.config.list_logical_devices('CPU')
  if len(cpus) > 1:
    logging.info('Training on %d logical CPU devices with MirroredStrategy',
                 len(cpus))
    return tf.distribute.MirroredStrategy([d.name for d in cpus])
  logging.info('Training on the CPU with the default strategy')
  return tf.distribute.get_strategy()
