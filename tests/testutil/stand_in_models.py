"""A small real SavedModel with the pushed model's signatures, for serving tests.

The trainer's model takes minutes to produce; the serving code only cares about the
SavedModel's contract, so the tests build a stand-in with exactly the same
signatures (names, input/output keys, dtypes, shapes, method names) around a fixed
random linear layer. Each version gets different weights (seeded by the version), so
a test can tell which version answered from the numbers as well as from the
response's model_spec.

`write_version` writes into a temporary folder beside the target and renames it into
place, as the Pusher does, so a server watching the base path never sees a
half-written version.
"""

import os
import shutil
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models import features
from models import serving_contract as contract
from serving.core import storage_path


def weights(version: int):
  """The (kernel [784, 10], bias [10]) of `version`: deterministic per version."""
  rng = np.random.default_rng(1000 + version)
  kernel = rng.normal(0.0, 0.1, size=(features.IMAGE_PIXELS, features.NUM_CLASSES))
  bias = rng.normal(0.0, 0.1, size=(features.NUM_CLASSES,))
  return kernel.astype(np.float32), bias.astype(np.float32)


class Digits(tf.Module):
  """The three serving signatures around `_scores` (float pixels -> softmax)."""

  def __init__(self):
    super().__init__()
    self.labels = tf.constant([str(d) for d in range(features.NUM_CLASSES)])

  def _scores(self, images):
    raise NotImplementedError

  def _parse(self, serialized):
    parsed = tf.io.parse_example(serialized, {
        features.IMAGE_KEY: tf.io.FixedLenFeature([features.IMAGE_PIXELS],
                                                  tf.int64)})
    return tf.cast(parsed[features.IMAGE_KEY], tf.float32) / 255.0

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def serving_default(self, examples):
    probabilities = self._scores(self._parse(examples))
    return {contract.PROBABILITIES_OUTPUT: probabilities,
            contract.CLASSES_OUTPUT: tf.argmax(probabilities, axis=1)}

  @tf.function(input_signature=[
      tf.TensorSpec([None, features.IMAGE_PIXELS], tf.float32)])
  def predict_images(self, images):
    return {contract.SCORES_OUTPUT: self._scores(images)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def classify(self, inputs):
    scores = self._scores(self._parse(inputs))
    classes = tf.tile(self.labels[tf.newaxis, :], [tf.shape(scores)[0], 1])
    return {contract.CLASSIFY_CLASSES: classes, contract.CLASSIFY_SCORES: scores}


class LinearDigits(Digits):
  """softmax(pixels @ kernel + bias): the test model, cheap to save and run."""

  def __init__(self, version: int):
    super().__init__()
    kernel, bias = weights(version)
    self.kernel = tf.Variable(kernel, trainable=False)
    self.bias = tf.Variable(bias, trainable=False)

  def _scores(self, images):
    return tf.nn.softmax(tf.matmul(images, self.kernel) + self.bias)


def set_method_name(export_dir: str, signature: str, method_name: str) -> None:
  """Rewrites one signature's method_name in saved_model.pb.

  tf.saved_model.save marks every signature `tensorflow/serving/predict`; TF
  Serving's Classify API (with --enable_signature_method_name_check) wants the
  classify signature marked `tensorflow/serving/classify`.
  """
  path = os.path.join(export_dir, 'saved_model.pb')
  saved_model = saved_model_pb2.SavedModel()
  with open(path, 'rb') as f:
    saved_model.ParseFromString(f.read())
  for meta_graph in saved_model.meta_graphs:
    meta_graph.signature_def[signature].method_name = method_name
  with open(path, 'wb') as f:
    f.write(saved_model.SerializeToString())


def save_model(export_dir: str, version: int) -> None:
  """Saves the stand-in of `version` to `export_dir` (which must not exist)."""
  save_module(LinearDigits(version), export_dir)


def save_module(module: Digits, export_dir: str) -> str:
  """Saves `module` with the pushed model's three signatures; returns the dir."""
  tf.saved_model.save(module, export_dir, signatures={
      contract.DEFAULT_SIGNATURE: module.serving_default,
      contract.IMAGES_SIGNATURE: module.predict_images,
      contract.CLASSIFY_SIGNATURE: module.classify,
  })
  set_method_name(export_dir, contract.CLASSIFY_SIGNATURE,
                  contract.CLASSIFY_METHOD)
  return export_dir


def publish(base_path: str, version: int, write) -> str:
  """Calls write(tmp_dir), then renames tmp_dir to base_path/version atomically."""
  os.makedirs(base_path, exist_ok=True)
  target = os.path.join(base_path, str(version))
  staging = tempfile.mkdtemp(prefix=f'.incoming-{version}-', dir=base_path)
  try:
    export_dir = os.path.join(staging, 'model')
    write(export_dir)
    os.rename(export_dir, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target


def write_version(base_path: str, version: int,
                  template: Optional[str] = None) -> str:
  """Pushes `version` into `base_path`: a fresh stand-in, or a copy of `template`.

  With `template` (a version directory of any model, e.g. a trained one) the
  version is a byte copy, which is how a hot-swap test pushes N+1 of a real model.
  """
  if template:
    return publish(base_path, version,
                   lambda d: shutil.copytree(template, d))
  return publish(base_path, version, lambda d: save_model(d, version))


def latest_version(base_path: str) -> int:
  return max(storage_path.version_dirs(base_path))


def random_images(count: int, seed: int = 0) -> np.ndarray:
  """uint8 images [count, 784], random but reproducible."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, size=(count, features.IMAGE_PIXELS), dtype=np.uint8)
