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

import collections
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from typing import Dict, Iterator, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models import features
from models import serving_contract as contract
from serving import storage_path


def weights(version: int):
  """The (kernel [784, 10], bias [10]) of `version`: deterministic per version."""
  rng = np.random.default_rng(1000 + version)
  kernel = rng.normal(0.0, 0.1, size=(features.IMAGE_PIXELS, features.NUM_CLASSES))
  bias = rng.normal(0.0, 0.1, size=(features.NUM_CLASSES,))
  return kernel.astype(np.float32), bias.astype(np.float32)


def expected_scores(version: int, images: np.ndarray) -> np.ndarray:
  """What the stand-in of `version` answers for float images [N, 784] in [0, 1]."""
  kernel, bias = weights(version)
  logits = images.astype(np.float32) @ kernel + bias
  logits -= logits.max(axis=1, keepdims=True)
  exp = np.exp(logits)
  return exp / exp.sum(axis=1, keepdims=True)


class _Digits(tf.Module):
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
    return {'probabilities': probabilities,
            'classes': tf.argmax(probabilities, axis=1)}

  @tf.function(input_signature=[
      tf.TensorSpec([None, features.IMAGE_PIXELS], tf.float32)])
  def predict_images(self, images):
    return {'scores': self._scores(images)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def classify(self, inputs):
    scores = self._scores(self._parse(inputs))
    classes = tf.tile(self.labels[tf.newaxis, :], [tf.shape(scores)[0], 1])
    return {'classes': classes, 'scores': scores}


class _LinearDigits(_Digits):
  """softmax(pixels @ kernel + bias): the test model, cheap to save and run."""

  def __init__(self, version: int):
    super().__init__()
    kernel, bias = weights(version)
    self.kernel = tf.Variable(kernel, trainable=False)
    self.bias = tf.Variable(bias, trainable=False)

  def _scores(self, images):
    return tf.nn.softmax(tf.matmul(images, self.kernel) + self.bias)


class _ConvDigits(_Digits):
  """A Keras-example-sized CNN (conv 32, conv 64, dense 128) with random weights.

  For the benchmark: it costs per call about what the trained model costs, so
  server overhead is measured against a realistic amount of model work.
  """

  def __init__(self, version: int):
    super().__init__()
    rng = np.random.default_rng(2000 + version)

    def variable(*shape):
      fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
      return tf.Variable(value.astype(np.float32), trainable=False)

    self.conv1, self.bias1 = variable(3, 3, 1, 32), variable(32)
    self.conv2, self.bias2 = variable(3, 3, 32, 64), variable(64)
    self.dense1, self.bias3 = variable(5 * 5 * 64, 128), variable(128)
    self.dense2, self.bias4 = variable(128, 10), variable(10)

  def _scores(self, images):
    x = tf.reshape(images, [-1, features.IMAGE_ROWS, features.IMAGE_COLS, 1])
    x = tf.nn.relu(tf.nn.conv2d(x, self.conv1, 1, 'VALID') + self.bias1)
    x = tf.nn.max_pool2d(x, 2, 2, 'VALID')
    x = tf.nn.relu(tf.nn.conv2d(x, self.conv2, 1, 'VALID') + self.bias2)
    x = tf.nn.max_pool2d(x, 2, 2, 'VALID')
    x = tf.reshape(x, [-1, 5 * 5 * 64])
    x = tf.nn.relu(tf.matmul(x, self.dense1) + self.bias3)
    return tf.nn.softmax(tf.matmul(x, self.dense2) + self.bias4)


ARCHITECTURES = {'linear': _LinearDigits, 'cnn': _ConvDigits}


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


def save_model(export_dir: str, version: int,
               architecture: str = 'linear') -> None:
  """Saves the stand-in of `version` to `export_dir` (which must not exist)."""
  save_module(ARCHITECTURES[architecture](version), export_dir)


def save_module(module: _Digits, export_dir: str) -> str:
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
                  template: Optional[str] = None,
                  architecture: str = 'linear') -> str:
  """Pushes `version` into `base_path`: a fresh stand-in, or a copy of `template`.

  With `template` (a version directory of any model, e.g. a trained one) the
  version is a byte copy, which is how a hot-swap test pushes N+1 of a real model.
  """
  if template:
    return publish(base_path, version,
                   lambda d: shutil.copytree(template, d))
  return publish(base_path, version,
                 lambda d: save_model(d, version, architecture))


def start_server(*models, **options):
  """A started ModelServer on 127.0.0.1, free ports, for (name, base_path) pairs
  or ModelConfigs; `options` override ServerOptions fields (TF Serving's flag
  names; file_system_poll_wait_seconds defaults to 0.1 here)."""
  from serving import model_registry  # pylint: disable=g-import-not-at-top
  from serving import server as server_lib  # pylint: disable=g-import-not-at-top
  configs = [m if isinstance(m, model_registry.ModelConfig)
             else model_registry.ModelConfig(*m) for m in models]
  settings = dict(host='127.0.0.1', port=free_port(), rest_api_port=free_port(),
                  file_system_poll_wait_seconds=0.1)
  settings.update(options)
  return server_lib.ModelServer(
      configs, server_lib.ServerOptions(**settings)).start()


def latest_version(base_path: str) -> int:
  return max(storage_path.version_dirs(base_path))


@contextlib.contextmanager
def model_calls(server, model_name: str
                ) -> Iterator[Dict[str, collections.Counter]]:
  """{signature: Counter(rows per model call)} of the calls the loaded versions
  of `model_name` make inside the block: how the server batched its requests.

  Every model call of a version runs its graph through the version's
  GraphRunner, so wrapping that runner observes the calls; a call is put under
  the signature whose input tensors it feeds.
  """
  calls: Dict[str, collections.Counter] = collections.defaultdict(
      collections.Counter)
  lock = threading.Lock()
  runners = []
  for servable in server.registry.servables(model_name).values():
    by_inputs = {frozenset(signature.input_names.values()): name
                 for name, signature in servable.signatures.items()}

    def counting(feeds, fetches, timeout_in_ms=0, run=servable.runner.run,
                 by_inputs=by_inputs):
      rows = len(next(iter(feeds.values())))
      with lock:
        calls[by_inputs.get(frozenset(feeds))][rows] += 1
      return run(feeds, fetches, timeout_in_ms)
    servable.runner.run = counting
    runners.append(servable.runner)
  try:
    yield calls
  finally:
    for runner in runners:
      del runner.run  # The class's own method again.


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago (for subprocess servers)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def random_images(count: int, seed: int = 0) -> np.ndarray:
  """uint8 images [count, 784], random but reproducible."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, size=(count, features.IMAGE_PIXELS), dtype=np.uint8)
