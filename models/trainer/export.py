"""The serving signatures of the exported SavedModel.

Each signature runs Transform's graph before the CNN, so clients send raw data:
- serving_default: serialized tf.Examples (what TFX's Evaluator and TF Serving's
  Predict with examples expect) -> probabilities [N, 10], classes [N];
- predict_images: images float32 [N, 784] in [0, 1] -> scores [N, 10], the contract
  of TF Serving's own MNIST tutorial client;
- classify: TF Serving's Classify API (method tensorflow/serving/classify): serialized
  tf.Examples under `inputs` -> classes (the digit names) and scores [N, 10].
The export carries TF Serving's warm-up requests for all three (warmup_requests.py).
"""

import os

import tensorflow as tf
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2

from models import features
from models import serving_contract as contract
from models.trainer import warmup_requests

DIGIT_NAMES = [str(d) for d in range(features.NUM_CLASSES)]


def export(model: keras.Model, tf_transform_output, serving_model_dir: str):
  """Saves `model` with its Transform layer and the three signatures."""
  model.tft_layer = tf_transform_output.transform_features_layer()
  raw_spec = tf_transform_output.raw_feature_spec()
  raw_spec.pop(features.LABEL_KEY)

  def scores_from_raw(raw_features):
    transformed = model.tft_layer(raw_features)
    return model(transformed[features.TRANSFORMED_IMAGE_KEY], training=False)

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=contract.EXAMPLES_INPUT)])
  def serve_examples(serialized):
    probabilities = scores_from_raw(tf.io.parse_example(serialized, raw_spec))
    return {contract.PROBABILITIES_OUTPUT: probabilities,
            contract.CLASSES_OUTPUT: tf.argmax(probabilities, axis=-1)}

  @tf.function(input_signature=[tf.TensorSpec(
      [None, features.IMAGE_PIXELS], tf.float32, name=contract.IMAGES_INPUT)])
  def predict_images(images):
    # Back to the raw 0-255 integers Transform was written for: one preprocessing
    # graph for every entry point.
    pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0),
                     tf.int64)
    scores = scores_from_raw({features.IMAGE_KEY: pixels})
    return {contract.SCORES_OUTPUT: scores}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=contract.CLASSIFY_INPUTS)])
  def classify(serialized):
    scores = scores_from_raw(tf.io.parse_example(serialized, raw_spec))
    classes = tf.tile(tf.constant([DIGIT_NAMES]), [tf.shape(scores)[0], 1])
    return {contract.CLASSIFY_CLASSES: classes,
            contract.CLASSIFY_SCORES: scores}

  model.save(serving_model_dir, save_format='tf', signatures={
      contract.DEFAULT_SIGNATURE: serve_examples,
      contract.IMAGES_SIGNATURE: predict_images,
      contract.CLASSIFY_SIGNATURE: classify,
  })
  _set_method_name(serving_model_dir, contract.CLASSIFY_SIGNATURE,
                   contract.CLASSIFY_METHOD)
  warmup_requests.write(serving_model_dir)


def _set_method_name(saved_model_dir: str, signature: str, method_name: str):
  """TF2's saver marks every signature as Predict; TF Serving's Classify RPC only
  accepts signatures whose method name says classify."""
  path = os.path.join(saved_model_dir, 'saved_model.pb')
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(path, 'rb') as f:
    saved_model.ParseFromString(f.read())
  for meta_graph in saved_model.meta_graphs:
    meta_graph.signature_def[signature].method_name = method_name
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(saved_model.SerializeToString())
