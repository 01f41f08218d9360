"""Request logging (serving/core/request_logging.py, TF Serving's logging_config).

A real server serves the model the smoke pipeline pushed, with a logging_config
read from a TF Serving model config file; the tests send gRPC and REST requests,
stop the server and read the PredictionLog TFRecords back record by record
(`logged`, tests/conftest.py, is one such server's log of every kind of request).
"""

import os
import re
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from models import serving_requests
from serving.core import model_registry
from serving.model_servers import process as process_lib
from tests.testutil import stand_in_models
from tests.testutil.mnist_requests import rest
from tests.testutil.request_logs import MODEL
from tests.testutil.request_logs import images_request
from tests.testutil.request_logs import log_files
from tests.testutil.request_logs import read_back
from tests.testutil.request_logs import start
from tests.testutil.request_logs import write_config



def test_log_file_is_named_from_the_prefix(logged):
  [path] = log_files(logged['prefix'])
  name = os.path.basename(path)
  assert re.fullmatch(rf'requests-\d{{8}}T\d{{6}}Z-{os.getpid()}-\d+\.tfrecord',
                      name), name
  assert logged['destinations'] == [(MODEL, path, 1.0)]


def test_grpc_requests_are_logged_as_sent_and_answered(logged):
  entries = read_back(logged['prefix'])
  assert len(entries) == len(logged['calls'])  # the failed call is not there
  for entry, (field, request, response) in zip(entries, logged['calls'][:4]):
    assert entry.WhichOneof('log_type') == field
    log = getattr(entry, field)
    assert log.request == request
    assert log.response == response
    metadata = entry.log_metadata
    expected_spec = (response.results[0].model_spec
                     if field == 'multi_inference_log' else response.model_spec)
    assert metadata.model_spec == expected_spec
    assert metadata.model_spec.name == MODEL
    assert metadata.model_spec.version.value == 1
    assert metadata.sampling_config.sampling_rate == 1.0
    assert list(metadata.saved_model_tags) == ['serve']
    assert (int(logged['started']) <= metadata.timestamp_secs
            <= logged['finished'])
  assert [e.log_metadata.model_spec.signature_name for e in entries[:4]] == [
      'predict_images', 'serving_default', 'classify', 'classify']


def test_rest_requests_are_logged_as_their_grpc_equivalents(logged):
  entries = read_back(logged['prefix'])
  _, images, answer = logged['calls'][4]
  predict = entries[4].predict_log
  assert entries[4].WhichOneof('log_type') == 'predict_log'
  assert predict.request.model_spec.name == MODEL
  assert predict.request.model_spec.signature_name == 'predict_images'
  np.testing.assert_array_equal(
      tf.make_ndarray(predict.request.inputs['images']),
      serving_requests.unit_floats(images))
  np.testing.assert_allclose(tf.make_ndarray(predict.response.outputs['scores']),
                             answer['predictions'], rtol=1e-6)
  assert predict.response.model_spec.version.value == 1

  _, images, answer = logged['calls'][5]
  classify = entries[5].classify_log
  assert entries[5].WhichOneof('log_type') == 'classify_log'
  assert classify.request.model_spec.version.value == 1  # as the URL said
  sent = [list(e.features.feature['image'].int64_list.value)
          for e in classify.request.input.example_list.examples]
  assert sent == images.tolist()
  logged_scores = [[c.score for c in result.classes]
                   for result in classify.response.result.classifications]
  np.testing.assert_allclose(
      logged_scores, [[score for _, score in pairs] for pairs in
                      answer['results']], rtol=1e-6)


def test_sampling_rate_zero_writes_nothing(model_base_path, tmp_path):
  prefix = str(tmp_path / 'requests')
  server = start(write_config(tmp_path / 'models.config', model_base_path,
                              prefix, rate=0.0))
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      for row in stand_in_models.random_images(20):
        stub.Predict(images_request(row[np.newaxis]), timeout=10)
  finally:
    server.stop()
  assert log_files(prefix) == []


def test_sampling_rate_half_logs_about_half(model_base_path, tmp_path):
  prefix = str(tmp_path / 'requests')
  server = start(write_config(tmp_path / 'models.config', model_base_path,
                              prefix, rate=0.5))
  sent = 300
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      request = images_request(stand_in_models.random_images(1))
      for _ in range(sent):
        stub.Predict(request, timeout=10)
  finally:
    server.stop()
  entries = read_back(prefix)
  # Binomial(300, 0.5): mean 150, sd 8.7; this bound is 7 sd wide either way.
  assert 90 <= len(entries) <= 210, len(entries)
  assert all(e.log_metadata.sampling_config.sampling_rate == 0.5
             for e in entries)


def test_reconfigure_moves_and_stops_logging(model_base_path, tmp_path):
  first, second = str(tmp_path / 'first'), str(tmp_path / 'second')
  config_file = write_config(tmp_path / 'a.config', model_base_path, first)
  server = start(config_file)
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      request = images_request(stand_in_models.random_images(1))
      stub.Predict(request, timeout=10)
      # The same logging config again: the same file goes on.
      server.registry.reconfigure(model_registry.read_model_config_file(
          config_file))
      stub.Predict(request, timeout=10)
      server.registry.reconfigure(model_registry.read_model_config_file(
          write_config(tmp_path / 'b.config', model_base_path, second)))
      stub.Predict(request, timeout=10)
      server.registry.reconfigure(model_registry.read_model_config_file(
          write_config(tmp_path / 'c.config', model_base_path)))
      stub.Predict(request, timeout=10)
  finally:
    server.stop()
  assert len(log_files(first)) == 1 and len(read_back(first)) == 2
  assert len(log_files(second)) == 1 and len(read_back(second)) == 1


def test_unknown_collector_type_is_refused(tmp_path):
  config = model_server_config_pb2.ModelServerConfig()
  model = config.model_config_list.config.add(name=MODEL, base_path='/models')
  model.logging_config.log_collector_config.type = 'bigquery'
  model.logging_config.log_collector_config.filename_prefix = '/logs/x'
  with pytest.raises(ValueError, match='Cannot find LogCollector::Factory for '
                     "type: 'bigquery'"):
    model_registry.model_configs(config)
  model.logging_config.log_collector_config.type = 'tfrecord'
  model.logging_config.log_collector_config.filename_prefix = ''
  with pytest.raises(ValueError, match='filename_prefix is empty'):
    model_registry.model_configs(config)


@pytest.mark.processes
def test_serve_process_writes_readable_logs_while_running(model_base_path,
                                                          tmp_path):
  """`python -m serving --model_config_file` as a process: the log reads while
  the server runs, and holds every request once it stopped on SIGTERM."""
  prefix = str(tmp_path / 'requests')
  config = write_config(tmp_path / 'models.config', model_base_path, prefix)
  server = process_lib.ServerProcess(
      f'--model_config_file={config}', rest_api_port=process_lib.free_port())
  with server.start():
    assert any(re.fullmatch(
        rf'model {MODEL}: requests logged to {re.escape(prefix)}-\S+\.tfrecord '
        r'\(sampling rate 1\)\n', line) for line in server.output), server.text()
    images = stand_in_models.random_images(4, seed=3)
    for row in images:
      status, answer = rest(
          server.rest_port, 'POST', f'/v1/models/{MODEL}:predict',
          {'signature_name': 'predict_images',
           'instances': serving_requests.unit_floats(row).tolist()})
      assert status == 200, answer
    deadline = time.monotonic() + 10
    while len(read_back(prefix) if log_files(prefix) else []) < 4:
      assert time.monotonic() < deadline, 'records not flushed while running'
      time.sleep(0.05)
    assert server.stop() == 0, server.text()
  entries = read_back(prefix)
  assert len(entries) == 4
  logged_images = [tf.make_ndarray(e.predict_log.request.inputs['images'])
                   for e in entries]
  np.testing.assert_array_equal(np.concatenate(logged_images),
                                serving_requests.unit_floats(images))

