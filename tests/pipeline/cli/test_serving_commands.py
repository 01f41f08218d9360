"""`mnist-tfx serve`, `predict` and `requests` (serving_commands.py): serve's own
part (the pushed model as the default), the others against a server on loopback
or the request logs one wrote."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import idx
from pipeline import config as config_lib
from pipeline import client as client_lib
from pipeline.reports import request_log_report as request_log_reader
from tests.testutil import model_servers
from tests.testutil import stand_in_models
from tests.testutil.cli import invoke
from tests.testutil.request_logs import MODEL
from tests.testutil.request_logs import log_files



@pytest.fixture(scope='module')
def server(model_base_path):
  server = model_servers.start_server((MODEL, model_base_path),
                                      file_system_poll_wait_seconds=0)
  yield server
  server.stop()


@pytest.fixture(scope='module')
def test_set(tmp_path_factory):
  """An IDX test set of 5 random images and their labels."""
  directory = tmp_path_factory.mktemp('idx')
  images = stand_in_models.random_images(5, seed=3).reshape(5, 28, 28)
  labels = np.array([0, 1, 2, 3, 4], np.uint8)
  images_name, labels_name = idx.FILE_NAMES['test']
  idx.write(str(directory / images_name), images)
  idx.write(str(directory / labels_name), labels)
  return str(directory), images.reshape(5, 784), labels


# --- predict ----------------------------------------------------------------------
@pytest.mark.parametrize('protocol,signature', [
    ('grpc', 'serving_default'), ('rest', 'serving_default'),
    ('grpc', 'predict_images'), ('rest', 'predict_images')])
def test_predict_prints_digits_and_probabilities(server, test_set, tmp_path,
                                                  protocol, signature):
  data_dir, images, labels = test_set
  pixels = images[0].reshape(28, 28).copy()
  pixels[[0, -1], :] = pixels[:, [0, -1]] = 0  # Dark border: MNIST's look.
  picture = tmp_path / 'digit.png'
  Image.fromarray(pixels).save(picture)
  port = server.grpc_port if protocol == 'grpc' else server.rest_port
  code, output = invoke('predict', str(picture), '--index', '1,3-4',
                        '--data-dir', data_dir, '--protocol', protocol,
                        '--server', f'127.0.0.1:{port}',
                        '--signature_name', signature)
  assert code == 0, output
  with client_lib.GrpcClient(f'127.0.0.1:{server.grpc_port}') as client:
    want = client.predict(np.stack([pixels.reshape(784), images[1], images[3],
                                    images[4]]))
  lines = output.splitlines()
  assert f'over {protocol}' in lines[0]
  rows = [line.split() for line in lines[2:6]]
  assert [row[0] for row in rows] == [str(picture), 'test[1]', 'test[3]',
                                      'test[4]']
  assert [row[1] for row in rows] == ['-', '1', '3', '4']
  assert [int(row[2]) for row in rows] == want.digits.tolist()
  for row, probabilities in zip(rows, want.probabilities):
    np.testing.assert_allclose([float(p) for p in row[4:]], probabilities,
                               atol=6e-4)
  assert 'test images classified correctly' in lines[6]


def test_predict_reports_server_errors(server, test_set):
  code, output = invoke('predict', '--index', '0', '--data-dir', test_set[0],
                        '--server', f'127.0.0.1:{server.grpc_port}',
                        '--model_version', '42')
  assert code == 1
  assert len(output.strip().splitlines()) == 1, output
  assert output.startswith('Error: request failed: NOT_FOUND'), output


def test_predict_needs_images():
  code, output = invoke('predict')
  assert code == 2 and '--index' in output


# --- serve ------------------------------------------------------------------------
def test_serve_serves_the_pushed_model_by_default(monkeypatch, tmp_path):
  """`mnist-tfx serve` is `python -m serving` (tests/serving/model_servers/
  test_main.py runs it) whose default model is what the Pusher pushed."""
  from serving.model_servers import main as server_main  # pylint: disable=g-import-not-at-top
  served = []
  monkeypatch.setattr(server_main, 'serve',
                      lambda options, verbose: served.append(options))
  config = config_lib.load('smoke').replace(output_dir=str(tmp_path))
  os.makedirs(config.model_base_path)
  code, output = invoke('serve', '--profile', 'smoke', '--output-dir',
                        str(tmp_path), '--port=9000')
  assert code == 0, output
  [options] = served
  assert (options.model_name, options.model_base_path, options.port) == (
      config.model_name, config.model_base_path, 9000)
  code, output = invoke('serve', '--profile', 'smoke', '--output-dir',
                        str(tmp_path), '--model_name=digits')
  assert code == 0, output
  assert served[1].model_name == 'digits'
  code, output = invoke('serve', '--model_base_path=/elsewhere')
  assert code == 0, output
  assert (served[2].model_name, served[2].model_base_path) == (
      'default', '/elsewhere')


def test_serve_rejects_bad_flags(tmp_path):
  bad = tmp_path / 'batching.txt'
  bad.write_text('max_batch_sise { value: 8 }')
  code, output = invoke('serve', '--port=0', '--rest_api_port=0')
  assert code == 2 and '--port or --grpc_socket_path' in output
  code, output = invoke('serve', '--enable_batching',
                        f'--batching_parameters_file={bad}')
  assert code == 2 and 'max_batch_sise' in output
  code, output = invoke('serve', f'--batching_parameters_file={bad}')
  assert code == 2 and 'without setting server_options.enable_batching' in output
  code, output = invoke('serve', '--model_version_policy=newest')
  assert code == 2 and 'newest' in output


# --- requests ---------------------------------------------------------------------
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

