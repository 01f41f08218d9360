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
from models import serving_requests

BATCH_SIZES = (1, 8)


def records(model_name: str = '') -> list:
  """PredictionLog records for serving_default, predict_images and classify."""
  logs = []
  for rows in BATCH_SIZES:
    examples = serving_requests.encode_examples(
        np.zeros((rows, features.IMAGE_PIXELS), np.uint8))
    for signature in (contract.DEFAULT_SIGNATURE, contract.IMAGES_SIGNATURE):
      log = prediction_log_pb2.PredictionLog()
      log.predict_log.request.CopyFrom(serving_requests.predict_request(
          model_name, signature,
          serving_requests.digit_inputs(signature, examples)))
      logs.append(log)
    log = prediction_log_pb2.PredictionLog()
    log.classify_log.request.CopyFrom(serving_requests.classification_request(
        model_name, contract.CLASSIFY_SIGNATURE, examples))
    logs.append(log)
  return logs


def write(saved_model_dir: str) -> str:
  """Writes the warm-up file into an exported SavedModel; returns its path."""
  path = os.path.join(saved_model_dir, contract.WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for record in records():
      writer.write(record.SerializeToString())
  return path
