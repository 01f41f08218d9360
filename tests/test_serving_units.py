"""The server's parts on their own: batching, config files, tensor and JSON codecs."""

import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import tensor_pb2
from tensorflow.python.saved_model import constants as saved_model_constants  # pylint: disable=g-direct-tensorflow-import

from models import serving_contract as contract
from serving import batching
from serving import errors
from serving import json_codec
from serving import mnist_inputs
from serving import model_registry
from serving import options as options_lib
from serving import servable
from serving import storage_path
from serving import tensors
from serving import warmup
from tests import serving_testutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- the serving contract -------------------------------------------------------------
def test_the_contract_spells_tensorflows_names():
  """models/serving_contract.py keeps TensorFlow's values as plain strings."""
  assert (contract.SERVE_TAG, contract.DEFAULT_SIGNATURE) == (
      tf.saved_model.SERVING, tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY)
  assert (contract.PREDICT_METHOD, contract.CLASSIFY_METHOD,
          contract.REGRESS_METHOD) == (
              tf.saved_model.PREDICT_METHOD_NAME,
              tf.saved_model.CLASSIFY_METHOD_NAME,
              tf.saved_model.REGRESS_METHOD_NAME)
  assert (contract.CLASSIFY_INPUTS, contract.CLASSIFY_CLASSES,
          contract.CLASSIFY_SCORES) == (
              tf.saved_model.CLASSIFY_INPUTS,
              tf.saved_model.CLASSIFY_OUTPUT_CLASSES,
              tf.saved_model.CLASSIFY_OUTPUT_SCORES)
  assert (contract.REGRESS_INPUTS, contract.REGRESS_OUTPUTS) == (
      tf.saved_model.REGRESS_INPUTS, tf.saved_model.REGRESS_OUTPUTS)
  assert contract.INIT_OP_SIGNATURE == (
      saved_model_constants.INIT_OP_SIGNATURE_KEY)
  assert contract.WARMUP_FILE.split(os.sep)[0] == (
      saved_model_constants.EXTRA_ASSETS_DIRECTORY)


# --- batching parameters ------------------------------------------------------------
def test_shipped_batching_parameters_file_parses():
  params = batching.load_batching_parameters(
      os.path.join(REPO, 'serving', 'batching_parameters.txt'))
  assert params.max_batch_size == 64
  assert params.batch_timeout_micros == 0
  assert params.num_batch_threads == 2


def test_batching_parameters_text_format():
  params = batching.parse_batching_parameters('''
      # TF Serving's own example values
      max_batch_size { value: 128 }
      batch_timeout_micros {value:5000}
      thread_pool_name { value: "pool" }
      allowed_batch_sizes: 32
      allowed_batch_sizes: 128
      pad_variable_length_inputs: true
  ''')
  assert params.max_batch_size == 128
  assert params.batch_timeout_micros == 5000
  assert params.thread_pool_name == 'pool'
  assert params.allowed_batch_sizes == (32, 128)
  assert params.pad_variable_length_inputs
  with pytest.raises(ValueError, match='max_batch_sise'):
    batching.parse_batching_parameters('max_batch_sise { value: 1 }')
  with pytest.raises(ValueError, match='max_batch_size'):
    batching.parse_batching_parameters('max_batch_size { value: 0 }')


# --- the batch scheduler ---------------------------------------------------------------
def _doubling_model(calls):
  def run(inputs):
    calls.append(len(inputs['x']))
    time.sleep(0.002)  # Long enough for followers to queue up.
    if np.any(inputs['x'] < 0):
      raise tf.errors.InvalidArgumentError(None, None, 'negative input')
    return {'y': inputs['x'] * 2}
  return run


def _submit_all(scheduler, values, rows=1):
  results = [None] * len(values)

  def client(i):
    x = np.full((rows, 3), values[i], np.float32)
    try:
      results[i] = scheduler.submit({'x': x}, rows)['y']
    except errors.ServingError as e:
      results[i] = e

  threads = [threading.Thread(target=client, args=(i,))
             for i in range(len(values))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=30)
  assert not any(thread.is_alive() for thread in threads), 'scheduler hangs'
  return results


@pytest.mark.parametrize('threads,timeout_micros', [(1, 0), (2, 0), (1, 5000)])
def test_scheduler_batches_concurrent_requests(threads, timeout_micros):
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(
          max_batch_size=8, num_batch_threads=threads,
          batch_timeout_micros=timeout_micros))
  values = list(range(1, 41))
  results = _submit_all(scheduler, values)
  for value, result in zip(values, results):
    np.testing.assert_array_equal(result, np.full((1, 3), 2 * value))
  assert sum(calls) == len(values)
  assert max(calls) <= 8
  assert max(calls) > 1, calls


def test_scheduler_isolates_a_failing_request():
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(
          max_batch_size=16, batch_timeout_micros=20000))
  values = [1, 2, -3, 4, 5]
  results = _submit_all(scheduler, values)
  assert isinstance(results[2], errors.ServingError)
  assert results[2].code == grpc.StatusCode.INVALID_ARGUMENT
  assert 'negative input' in results[2].message
  for i in (0, 1, 3, 4):
    np.testing.assert_array_equal(results[i], np.full((1, 3), 2 * values[i]))


def test_scheduler_runs_requests_larger_than_a_batch_alone():
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(max_batch_size=4))
  results = _submit_all(scheduler, [1, 2, 3], rows=10)
  assert all(r.shape == (10, 3) for r in results)
  assert calls == [10, 10, 10]


def test_scheduler_refuses_work_beyond_its_queue():
  release = threading.Event()

  def slow(inputs):
    release.wait(10)
    return {'y': inputs['x']}

  scheduler = batching.BatchScheduler(slow, batching.BatchingParameters(
      max_batch_size=1, max_enqueued_batches=2))
  threads = [threading.Thread(target=scheduler.submit,
                              args=({'x': np.zeros((1, 1))}, 1))
             for _ in range(3)]  # One running, two queued: the queue is full.
  for thread in threads:
    thread.start()
  deadline = time.monotonic() + 10
  while scheduler._queued_rows < 2 and time.monotonic() < deadline:  # pylint: disable=protected-access
    time.sleep(0.01)
  with pytest.raises(errors.ServingError) as raised:
    scheduler.submit({'x': np.zeros((1, 1))}, 1)
  assert raised.value.code == grpc.StatusCode.UNAVAILABLE
  release.set()
  for thread in threads:
    thread.join(timeout=10)


# --- model config -------------------------------------------------------------------------
def test_version_policies():
  on_disk = [3, 1, 10, 2]
  assert model_registry.VersionPolicy().select(on_disk) == {10}
  assert model_registry.VersionPolicy.parse('latest:2').select(on_disk) == {3, 10}
  assert model_registry.VersionPolicy.parse('all').select(on_disk) == {1, 2, 3, 10}
  assert model_registry.VersionPolicy.parse('specific:2,7').select(on_disk) == {2}
  for bad in ('newest', 'latest:0', 'specific', 'all:3'):
    with pytest.raises(ValueError):
      model_registry.VersionPolicy.parse(bad)


def test_versions_are_numbered_folders(tmp_path):
  for name in ('1', '0002', 'tmp', '.pushing-3'):
    os.makedirs(tmp_path / name)
  (tmp_path / '4').write_text('a file, not a folder')
  assert storage_path.version_dirs(str(tmp_path)) == {
      1: f'{tmp_path}/1', 2: f'{tmp_path}/0002'}
  assert storage_path.version_dirs(str(tmp_path / 'missing')) == {}
  assert storage_path.version_dirs(str(tmp_path / '4')) == {}


def test_only_complete_saved_models_are_served(tmp_path):
  """A version folder without saved_model.pb (being written) is left alone."""
  base_path = str(tmp_path / 'm')
  serving_testutil.write_version(base_path, 1)
  os.makedirs(os.path.join(base_path, '2', 'variables'))
  registry = model_registry.ModelRegistry(
      [model_registry.ModelConfig('m', base_path)],
      options=options_lib.ServerOptions(file_system_poll_wait_seconds=0))
  registry.start()
  try:
    assert list(registry.servables('m')) == [1]
    assert [s.version for s in registry.version_statuses('m')] == [1]
  finally:
    registry.stop()


# --- tensors ---------------------------------------------------------------------------------
@pytest.mark.parametrize('value', [
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.arange(6, dtype=np.int64).reshape(3, 2),
    np.array([True, False]),
    np.array([b'a', b'\xff\x00'], dtype=object),
    np.arange(4, dtype=np.float16),
    np.arange(4, dtype=np.uint8),
])
def test_tensor_protos_round_trip(value):
  packed = tf.make_tensor_proto(value)  # tensor_content, as clients send.
  np.testing.assert_array_equal(tensors.to_ndarray('x', packed, 100), value)
  typed = tensor_pb2.TensorProto()
  tensors.fill_proto(value, typed)
  assert not typed.tensor_content  # Typed fields, as TF Serving answers.
  np.testing.assert_array_equal(tf.make_ndarray(typed), value)
  assert tf.make_ndarray(typed).dtype == value.dtype


def test_scores_travel_in_float_val():
  proto = tensor_pb2.TensorProto()
  tensors.fill_proto(np.array([[0.25, 0.75]], np.float32), proto)
  assert list(proto.float_val) == [0.25, 0.75]
  assert [d.size for d in proto.tensor_shape.dim] == [1, 2]


def test_malformed_tensor_protos_are_invalid_arguments():
  proto = tf.make_tensor_proto(np.zeros((2, 2), np.float32))
  proto.tensor_shape.dim[0].size = -1
  with pytest.raises(errors.ServingError, match='negative'):
    tensors.to_ndarray('x', proto, 100)
  proto.tensor_shape.dim[0].size = 1000
  with pytest.raises(errors.ServingError, match='elements'):
    tensors.to_ndarray('x', proto, 100)
  proto.tensor_shape.dim[0].size = 3
  with pytest.raises(errors.ServingError, match='bytes'):
    tensors.to_ndarray('x', proto, 100)
  proto.dtype = 0
  with pytest.raises(errors.ServingError, match='dtype'):
    tensors.to_ndarray('x', proto, 100)


# --- JSON -----------------------------------------------------------------------------------------
def test_json_tensors_follow_tf_serving_rules():
  assert json_codec.to_ndarray([[1, 2.5]], tf.float32).dtype == np.float32
  strings = json_codec.to_ndarray(['a', {'b64': 'AP8='}], tf.string)
  assert list(strings) == [b'a', b'\x00\xff']
  with pytest.raises(errors.ServingError, match='unexpected size'):
    json_codec.to_ndarray([[1, 2], [3]], tf.float32)
  with pytest.raises(errors.ServingError, match='not of expected type: int64'):
    json_codec.to_ndarray([1.5], tf.int64)
  with pytest.raises(errors.ServingError, match='base64'):
    json_codec.to_ndarray([{'b64': '***'}], tf.string)


def test_json_predict_response_layouts():
  outputs = {'scores': np.array([[0.1, 0.9]], np.float32),
             'classes': np.array([1])}
  assert json_codec.predict_response(outputs, json_codec.ROW) == {
      'predictions': [{'classes': 1, 'scores': [0.1, 0.9]}]}
  assert json_codec.predict_response(outputs, json_codec.COLUMNAR) == {
      'outputs': {'classes': [1], 'scores': [[0.1, 0.9]]}}
  assert json_codec.predict_response({'x_bytes': np.array([b'\x00'], object)},
                                     json_codec.ROW) == {
                                         'predictions': [{'b64': 'AA=='}]}


def test_error_codes_map_to_tf_serving_http_statuses():
  assert errors.http_status(grpc.StatusCode.NOT_FOUND) == 404
  assert errors.http_status(grpc.StatusCode.INVALID_ARGUMENT) == 400
  assert errors.http_status(grpc.StatusCode.FAILED_PRECONDITION) == 400
  assert errors.http_status(grpc.StatusCode.UNAVAILABLE) == 503


# --- client inputs ----------------------------------------------------------------------------------
def test_image_files_become_mnist_pixels(tmp_path):
  # A dark "1" on white paper, 56x56: resized and inverted to MNIST's look.
  picture = np.full((56, 56), 255, np.uint8)
  picture[8:48, 26:30] = 0
  path = tmp_path / 'one.png'
  Image.fromarray(picture).save(path)
  pixels = mnist_inputs.load_image_file(str(path))
  assert pixels.shape == (784,) and pixels.dtype == np.uint8
  grid = pixels.reshape(28, 28)
  assert grid[0, 0] == 0 and grid[14, 14] > 200


def test_examples_carry_the_feature_contract():
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  images = np.arange(784 * 2).reshape(2, 784) % 256
  [first, _] = mnist_inputs.encode_examples(images)
  example = example_pb2.Example.FromString(first)
  assert list(example.features.feature['image'].int64_list.value) == list(
      images[0])
  with pytest.raises(ValueError):
    mnist_inputs.encode_examples(np.zeros((1, 783)))
  with pytest.raises(ValueError):
    mnist_inputs.encode_examples(np.full((1, 784), 256))


# --- warm-up ----------------------------------------------------------------------------------------
def _write_warmup_file(version_dir, signature_name):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  record = prediction_log_pb2.PredictionLog()
  request = record.predict_log.request
  request.model_spec.name = 'mnist'
  request.model_spec.signature_name = signature_name
  request.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(np.zeros((1, 784), np.float32)))
  path = os.path.join(version_dir, contract.WARMUP_FILE)
  os.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(record.SerializeToString())
    writer.write(record.SerializeToString())


def test_warm_up_without_requests_calls_the_numeric_signatures(tmp_path):
  """Without recorded requests only predict_images (float images) can be called:
  serving_default and classify take serialized examples only the model knows."""
  version_dir = serving_testutil.write_version(str(tmp_path / 'm'), 1)
  loaded = servable.Servable.load('m', 1, version_dir, None)
  assert warmup.warm_up(loaded) == len(warmup._SYNTHETIC_BATCH_SIZES)  # pylint: disable=protected-access


def test_the_pushed_model_carries_warmup_requests_for_every_signature(
    smoke_model_version):
  """The exporter writes TF Serving's warm-up file; the server replays it all."""
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(smoke_model_version, contract.WARMUP_FILE)
  records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
             for r in tf.data.TFRecordDataset(path)]
  signatures = {(r.WhichOneof('log_type'),
                 getattr(r, r.WhichOneof('log_type')).request.model_spec
                 .signature_name) for r in records}
  assert signatures == {('predict_log', 'serving_default'),
                        ('predict_log', 'predict_images'),
                        ('classify_log', 'classify')}
  loaded = servable.Servable.load('m', 1, smoke_model_version, None)
  assert warmup.warm_up(loaded) == len(records) == 6


def test_warm_up_replays_tf_serving_warmup_requests(tmp_path):
  version_dir = serving_testutil.write_version(str(tmp_path / 'm'), 1)
  _write_warmup_file(version_dir, 'predict_images')
  loaded = servable.Servable.load('m', 1, version_dir, None)
  assert warmup.warm_up(loaded) == 2


def test_failing_warmup_requests_fail_the_load(tmp_path):
  base_path = str(tmp_path / 'm')
  version_dir = serving_testutil.write_version(base_path, 1)
  _write_warmup_file(version_dir, 'no_such_signature')
  registry = model_registry.ModelRegistry(
      [model_registry.ModelConfig('m', base_path)],
      options=options_lib.ServerOptions(file_system_poll_wait_seconds=0,
                                        max_num_load_retries=0))
  registry.start()
  try:
    assert registry.servables('m') == {}
    [status] = registry.version_statuses('m')
    assert status.state == status.END
    assert 'no_such_signature' in status.status.error_message
  finally:
    registry.stop()
