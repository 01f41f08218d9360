"""The warm-up requests the exported model carries, for any TF Serving.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
PredictionLog protos, servables/tensorflow/saved_model_warmup.cc) before a new
version takes traffic, so that its first users do not pay for building the
executors. Writing them here, beside the signatures they exercise, means the real
tensorflow/serving image on Kubeflow warms the model up too, and the project's own
server needs to know nothing about MNIST to do the same. One record per signature
and batch size: an all-black image, which runs every op a real digit runs.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from models import features
from models import serving_contract as contract

BATCH_SIZES = (1, 8)


def _examples(rows: int) -> list:
  return [features.example([0] * features.IMAGE_PIXELS)] * rows


def records(model_name: str = '') -> list:
  """PredictionLog records for serving_default, predict_images and classify."""
  logs = []
  for rows in BATCH_SIZES:
    default = prediction_log_pb2.PredictionLog()
    request = default.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = contract.DEFAULT_SIGNATURE
    request.inputs[contract.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(
        [e.SerializeToString() for e in _examples(rows)], tf.string))
    images = prediction_log_pb2.PredictionLog()
    request = images.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = contract.IMAGES_SIGNATURE
    request.inputs[contract.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(
        np.zeros((rows, features.IMAGE_PIXELS), np.float32)))
    classify = prediction_log_pb2.PredictionLog()
    request = classify.classify_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
    request.input.example_list.examples.extend(_examples(rows))
    logs += [default, images, classify]
  return logs


def write(saved_model_dir: str) -> str:
  """Writes the warm-up file into an exported SavedModel; returns its path."""
  path = os.path.join(saved_model_dir, contract.WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for record in records():
      writer.write(record.SerializeToString())
  return path
