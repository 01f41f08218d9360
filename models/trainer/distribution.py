"""Choosing where to train (several workers, TPU, all GPUs, or the CPU) and in
which precision."""

import glob
import json
import os

from absl import logging
import tensorflow as tf
import tf_keras as keras


def _tpu_present() -> bool:
  """A TPU VM exposes /dev/accel*; a TPU node is named in TPU_NAME. Checking first
  keeps the resolver from probing the cloud metadata server on other machines."""
  return bool(os.environ.get('TPU_NAME') or glob.glob('/dev/accel*'))


def cpu_has_native_bfloat16(cpuinfo: str = '/proc/cpuinfo') -> bool:
  """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), so that
  oneDNN's bfloat16 convolutions are faster than float32 ones, not emulated and
  slower. TF has no public query for it; Linux lists the instruction sets."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          return not {'avx512_bf16', 'amx_bf16'}.isdisjoint(line.split())
  except OSError:
    pass
  return False


def precision_policy(mixed_precision: bool, device: str,
                     cpuinfo: str = '/proc/cpuinfo') -> str:
  """The Keras dtype policy for `device` ('TPU', 'GPU' or 'CPU').

  Mixed precision computes in 16 bits and keeps the variables in float32: float16
  on GPU (tensor cores), bfloat16 on TPU and on CPUs that have it in hardware
  (measured on an AVX512-BF16 CPU: 1.4-1.5x the images per second of float32).
  Elsewhere it would be slower, so float32.
  """
  if not mixed_precision:
    return 'float32'
  if device == 'GPU':
    return 'mixed_float16'
  if device == 'TPU' or cpu_has_native_bfloat16(cpuinfo):
    return 'mixed_bfloat16'
  return 'float32'


def training_device() -> str:
  """The device training runs on: 'TPU', 'GPU' or 'CPU'."""
  if _tpu_present():
    return 'TPU'
  return 'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'


def set_precision_policy(mixed_precision: bool, device: str = '') -> str:
  """Sets Keras' global dtype policy for `device` (default: `training_device()`;
  see `precision_policy`) and returns its name. Models built afterwards use it."""
  device = device or training_device()
  policy = precision_policy(mixed_precision, device)
  keras.mixed_precision.set_global_policy(policy)
  logging.info('Precision policy on %s: %s', device, policy)
  return policy


def cluster_workers() -> int:
  """How many training processes TF_CONFIG names (0 without TF_CONFIG): what
  Vertex AI's worker pools, a Kubeflow TFJob or multi_worker.py set."""
  try:
    cluster = json.loads(os.environ.get('TF_CONFIG') or '{}').get('cluster', {})
  except ValueError as e:
    raise ValueError(f'TF_CONFIG is not JSON: {e}') from None
  return sum(len(cluster.get(kind, [])) for kind in ('chief', 'worker'))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the outputs: the chief of a cluster (the task
  named `chief`, else worker 0), or the only process there is."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  task_type = getattr(resolver, 'task_type', None)
  if not task_type:
    return True
  if task_type == 'chief':
    return True
  return (task_type == 'worker' and resolver.task_id == 0 and
          'chief' not in resolver.cluster_spec().as_dict())


def choose_strategy(mixed_precision: bool = False) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy when TF_CONFIG names several processes;
  TPUStrategy when a TPU is found, MirroredStrategy over all GPUs (or over
  several logical CPU devices, as tests set up), else the default strategy; and
  the precision policy for that device (`set_precision_policy`). The softmax
  output stays float32 (see model.py's Dense), and the export is float32
  (model.float32_twin).
  """
  if cluster_workers() > 1:
    # Its cluster comes from TF_CONFIG; each process trains on its local devices
    # and the gradients are all-reduced across processes every step. Made first:
    # it configures TensorFlow's runtime, which looking at devices would start.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    device = training_device()
    set_precision_policy(mixed_precision, device)
    logging.info('Training as %s %d of a %d-process cluster on %s',
                 strategy.cluster_resolver.task_type,
                 strategy.cluster_resolver.task_id, cluster_workers(), device)
    return strategy
  device = training_device()
  set_precision_policy(mixed_precision, device)
  if device == 'TPU':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    logging.info('Training on TPU %s', resolver.master())
    return tf.distribute.TPUStrategy(resolver)
  if device == 'GPU':
    gpus = tf.config.list_logical_devices('GPU')
    logging.info('Training on %d GPU(s) with MirroredStrategy', len(gpus))
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  cpus = tf.config.list_logical_devices('CPU')
  if len(cpus) > 1:
    logging.info('Training on %d logical CPU devices with MirroredStrategy',
                 len(cpus))
    return tf.distribute.MirroredStrategy([d.name for d in cpus])
  logging.info('Training on the CPU with the default strategy')
  return tf.distribute.get_strategy()
