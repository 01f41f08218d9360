"""Request logging (TF Serving's logging_config) and `mnist-tfx requests`.

A real server serves the model the smoke pipeline pushed, with a logging_config
read from a TF Serving model config file; the tests send gRPC and REST requests,
stop the server and read the PredictionLog TFRecords back, record by record and
through the reader command.
"""

import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from components import idx
from models import serving_contract as contract
from pipeline.cli import main as cli
from pipeline.errors import UserError
from serving import client as client_lib
from serving import mnist_inputs
from serving import model_registry
from serving import request_log_reader
from tests import serving_testutil

MODEL = 'mnist'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def model_base_path(tmp_path_factory, smoke_model_version):
  base_path = str(tmp_path_factory.mktemp('logged') / MODEL)
  shutil.copytree(smoke_model_version, os.path.join(base_path, '1'))
  return base_path


def write_config(path, base_path, prefix=None, rate=1.0,
                 collector='tfrecord') -> str:
  """A TF Serving model config file serving MODEL, logged to `prefix`."""
  logging = ''
  if prefix is not None:
    logging = f'''
    logging_config {{
      log_collector_config {{ type: "{collector}" filename_prefix: "{prefix}" }}
      sampling_config {{ sampling_rate: {rate} }}
    }}'''
  with open(path, 'w') as f:
    f.write(f'''model_config_list {{
  config {{
    name: "{MODEL}"
    base_path: "{base_path}"
    model_platform: "tensorflow"{logging}
  }}
}}
''')
  return str(path)


def start(config_file):
  models = model_registry.read_model_config_file(config_file)
  return serving_testutil.start_server(*models, file_system_poll_wait_seconds=0)


def log_files(prefix):
  return sorted(glob.glob(prefix + '*'))


def read_back(prefix):
  notes = []
  entries = [entry for _, entry in request_log_reader.read_logs(
      log_files(prefix), notes)]
  assert not notes
  return entries


def rest(port, path, body):
  connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
  try:
    connection.request('POST', path, body=json.dumps(body))
    response = connection.getresponse()
    return response.status, json.loads(response.read())
  finally:
    connection.close()


def images_request(images):
  return client_lib.predict_request(images, MODEL, contract.IMAGES_SIGNATURE)


def examples_request(images):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL  # no signature: serving_default
  request.inputs[contract.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(
      mnist_inputs.encode_examples(images), dtype=tf.string))
  return request


def classify_request(images):
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
  for serialized in mnist_inputs.encode_examples(images):
    request.input.example_list.examples.add().ParseFromString(serialized)
  return request


def multi_inference_request(images):
  request = inference_pb2.MultiInferenceRequest()
  task = request.tasks.add()
  task.model_spec.name = MODEL
  task.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
  task.method_name = contract.CLASSIFY_METHOD
  for serialized in mnist_inputs.encode_examples(images):
    request.input.example_list.examples.add().ParseFromString(serialized)
  return request


@pytest.fixture(scope='module')
def logged(model_base_path, tmp_path_factory):
  """Requests over every path, all logged (sampling_rate 1.0); the server is
  stopped before the log is read. Returns what was sent and answered."""
  root = tmp_path_factory.mktemp('request_logs')
  prefix = str(root / 'logs' / 'requests')  # the folder does not exist yet
  config = write_config(root / 'models.config', model_base_path, prefix)
  images = serving_testutil.random_images(12, seed=7)
  calls = []  # (log field, request, response) in the order sent
  started = time.time()
  server = start(config)
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      for field, call, request in (
          ('predict_log', stub.Predict, images_request(images[0:3])),
          ('predict_log', stub.Predict, examples_request(images[3:5])),
          ('classify_log', stub.Classify, classify_request(images[5:7])),
          ('multi_inference_log', stub.MultiInference,
           multi_inference_request(images[7:8]))):
        calls.append((field, request, call(request, timeout=10)))
      # A failed request is not logged.
      bad = images_request(images[:1])
      bad.model_spec.signature_name = 'no_such_signature'
      with pytest.raises(grpc.RpcError):
        stub.Predict(bad, timeout=10)
    status, answer = rest(server.rest_port, f'/v1/models/{MODEL}:predict', {
        'signature_name': 'predict_images',
        'instances': mnist_inputs.unit_floats(images[8:10]).tolist()})
    assert status == 200, answer
    calls.append(('rest_predict', images[8:10], answer))
    status, answer = rest(
        server.rest_port, f'/v1/models/{MODEL}/versions/1:classify', {
        'signature_name': 'classify',
        'examples': [{'image': row.tolist()} for row in images[10:12]]})
    assert status == 200, answer
    calls.append(('rest_classify', images[10:12], answer))
    destinations = server.registry.request_logger.destinations()
  finally:
    server.stop()
  return dict(prefix=prefix, calls=calls, started=started,
              finished=time.time(), destinations=destinations)


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
      mnist_inputs.unit_floats(images))
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
      for row in serving_testutil.random_images(20):
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
      request = images_request(serving_testutil.random_images(1))
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
      request = images_request(serving_testutil.random_images(1))
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


def invoke(*args):
  result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
  return result.exit_code, result.output


def test_requests_command_reports_and_draws(logged, small_mnist_dir, tmp_path):
  output = tmp_path / 'pictures'
  code, text = invoke('requests', logged['prefix'], '--output', str(output),
                      '--data-dir', small_mnist_dir)
  assert code == 0, text
  lines = text.splitlines()
  [path] = log_files(logged['prefix'])
  assert lines[0].startswith('1 request log file, 6 logged requests (')
  assert lines[1] == f'  {path}: 6 records'
  rows = {tuple(line.split()[:4]): tuple(int(n) for n in line.split()[4:])
          for line in lines if line.startswith('  ') and line.split()[1:2] == [
              MODEL]}
  assert rows == {
      ('classify', MODEL, '1', 'classify'): (2, 4),
      ('multi_inference', MODEL, '1', 'classify'): (1, 1),
      ('predict', MODEL, '1', 'predict_images'): (2, 5),
      ('predict', MODEL, '1', 'serving_default'): (1, 2)}
  assert 'images seen: 12 (12 with a predicted digit)' in lines

  # The predicted digits are the server's answers; the training column is the
  # data dir's labels.
  predicted = []
  for field, request, response in logged['calls']:
    if field == 'predict_log' and 'scores' in response.outputs:
      predicted += np.argmax(tf.make_ndarray(response.outputs['scores']),
                             axis=1).tolist()
    elif field == 'predict_log':
      predicted += tf.make_ndarray(response.outputs['classes']).tolist()
    elif field in ('classify_log', 'multi_inference_log'):
      result = (response.result if field == 'classify_log'
                else response.results[0].classification_result)
      predicted += [int(max(c.classes, key=lambda x: x.score).label)
                    for c in result.classifications]
    elif field == 'rest_predict':
      predicted += np.argmax(response['predictions'], axis=1).tolist()
    else:
      predicted += [int(max(pairs, key=lambda p: p[1])[0])
                    for pairs in response['results']]
  assert len(predicted) == 12
  _, labels = idx.load(small_mnist_dir, 'train')
  table = {int(line.split()[0]): line.split()
           for line in lines if re.fullmatch(r'\s+\d .*', line)}
  for digit in range(10):
    assert int(table[digit][1]) == predicted.count(digit), table[digit]
    assert int(table[digit][3]) == int(np.sum(labels == digit)), table[digit]

  digits_png = output / request_log_reader.DIGITS_PICTURE
  chart_png = output / request_log_reader.DISTRIBUTION_PICTURE
  assert f'sample of 12 logged digits: {digits_png}' in lines
  assert f'digit distribution chart: {chart_png}' in lines
  for png in (digits_png, chart_png):
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_requests_command_errors_are_one_line(logged, tmp_path):
  code, text = invoke('requests', str(tmp_path / 'nothing'))
  assert code == 1
  assert text.strip().splitlines() == [
      f'Error: no request log files match {tmp_path / "nothing"} (looked for '
      f'{tmp_path / "nothing"}*.tfrecord); give the logging_config '
      'filename_prefix, a folder or files']
  garbage = tmp_path / 'garbage.tfrecord'
  garbage.write_bytes(b'not a TFRecord file at all' * 10)
  code, text = invoke('requests', str(garbage))
  assert code == 1
  assert text.strip().splitlines() == [
      f'Error: {garbage}: not a readable TFRecord file (corrupt after 0 records)']


def test_incomplete_last_record_is_skipped_with_a_note(logged, tmp_path):
  [path] = log_files(logged['prefix'])
  data = open(path, 'rb').read()
  partial = tmp_path / 'partial.tfrecord'
  partial.write_bytes(data[:-20])  # the last record half written
  summary = request_log_reader.summarize([str(partial)])
  assert summary.total_requests == 5
  assert summary.notes == [f'{partial}: the last record is incomplete (the '
                           'server is still writing it?); read the 5 before it']
  corrupt = bytearray(data)
  corrupt[40] ^= 0xFF  # inside the first record
  (tmp_path / 'corrupt.tfrecord').write_bytes(bytes(corrupt))
  with pytest.raises(UserError, match='corrupt after 0 records'):
    request_log_reader.summarize([str(tmp_path / 'corrupt.tfrecord')])


def test_serve_process_writes_readable_logs_while_running(model_base_path,
                                                          tmp_path):
  """`mnist-tfx serve --model_config_file` as a process: the log reads while
  the server runs, and holds every request once it stopped on SIGTERM."""
  prefix = str(tmp_path / 'requests')
  config = write_config(tmp_path / 'models.config', model_base_path, prefix)
  grpc_port, rest_port = serving_testutil.free_port(), serving_testutil.free_port()
  process = subprocess.Popen(
      [sys.executable, '-m', 'pipeline.cli', 'serve', '--host=127.0.0.1',
       f'--port={grpc_port}', f'--rest_api_port={rest_port}',
       f'--model_config_file={config}'],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.monotonic() + 90
    lines = []
    while not any(line.startswith('batching: ') for line in lines):
      line = process.stdout.readline()
      assert line or process.poll() is None, ''.join(lines)
      assert time.monotonic() < deadline, ''.join(lines)
      lines.append(line)
    assert any(re.fullmatch(
        rf'model {MODEL}: requests logged to {re.escape(prefix)}-\S+\.tfrecord '
        r'\(sampling rate 1\)\n', line) for line in lines), ''.join(lines)
    images = serving_testutil.random_images(4, seed=3)
    for row in images:
      status, answer = rest(rest_port, f'/v1/models/{MODEL}:predict', {
          'signature_name': 'predict_images',
          'instances': mnist_inputs.unit_floats(row).tolist()})
      assert status == 200, answer
    deadline = time.monotonic() + 10
    while len(read_back(prefix) if log_files(prefix) else []) < 4:
      assert time.monotonic() < deadline, 'records not flushed while running'
      time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    rest_of_output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest_of_output
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  entries = read_back(prefix)
  assert len(entries) == 4
  logged_images = [tf.make_ndarray(e.predict_log.request.inputs['images'])
                   for e in entries]
  np.testing.assert_array_equal(np.concatenate(logged_images),
                                mnist_inputs.unit_floats(images))
