"""`mnist-tfx serve` and `mnist-tfx predict`, end to end on loopback."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from components import idx
from pipeline.cli import main as cli
from serving import client as client_lib
from tests import serving_testutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def model_base_path(tmp_path_factory, smoke_model_version):
  """A base path with, as version 1, the model the smoke pipeline pushed."""
  base_path = str(tmp_path_factory.mktemp('cli') / 'mnist')
  shutil.copytree(smoke_model_version, os.path.join(base_path, '1'))
  return base_path


@pytest.fixture(scope='module')
def server(model_base_path):
  server = serving_testutil.start_server(('mnist', model_base_path),
                                         file_system_poll_wait_seconds=0)
  yield server
  server.stop()


@pytest.fixture(scope='module')
def test_set(tmp_path_factory):
  """An IDX test set of 5 random images and their labels."""
  directory = tmp_path_factory.mktemp('idx')
  images = serving_testutil.random_images(5, seed=3).reshape(5, 28, 28)
  labels = np.array([0, 1, 2, 3, 4], np.uint8)
  images_name, labels_name = idx.FILE_NAMES['test']
  idx.write(str(directory / images_name), images)
  idx.write(str(directory / labels_name), labels)
  return str(directory), images.reshape(5, 784), labels


def invoke(*args):
  result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
  return result.exit_code, result.output


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


def test_client_classify_and_metadata(server):
  images = serving_testutil.random_images(2)
  for client in (client_lib.GrpcClient(f'127.0.0.1:{server.grpc_port}'),
                 client_lib.RestClient(f'127.0.0.1:{server.rest_port}')):
    with client:
      results, _ = client.classify(images)
      assert [label for label, _ in results[0]] == [str(d) for d in range(10)]
      prediction = client.predict(images)
      np.testing.assert_allclose([score for _, score in results[1]],
                                 prediction.probabilities[1], atol=1e-6)
      assert client.metadata() and client.model_status()


def test_serve_command(model_base_path, tmp_path):
  """The real command in its own process: flags, batching file, SIGTERM."""
  grpc_port, rest_port = serving_testutil.free_port(), serving_testutil.free_port()
  process = subprocess.Popen(
      [sys.executable, '-m', 'pipeline.cli', 'serve', '--host=127.0.0.1',
       f'--port={grpc_port}', f'--rest_api_port={rest_port}',
       '--model_name=digits', f'--model_base_path={model_base_path}',
       '--enable_batching',
       '--batching_parameters_file=serving/batching_parameters.txt',
       '--version_label', 'stable=1'],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.monotonic() + 90
    lines = []
    while not any('REST API at' in line for line in lines):
      line = process.stdout.readline()
      assert line or process.poll() is None, ''.join(lines)
      assert time.monotonic() < deadline, ''.join(lines)
      lines.append(line)
    output = ''.join(lines)
    assert 'model digits: versions [1]' in output
    assert f'gRPC API at 127.0.0.1:{grpc_port}' in output
    images = serving_testutil.random_images(3)
    with client_lib.GrpcClient(f'127.0.0.1:{grpc_port}', 'digits') as client:
      by_label = client.predict(images, version_label='stable')
      assert by_label.model_version == 1
    with client_lib.RestClient(f'127.0.0.1:{rest_port}', 'digits') as client:
      np.testing.assert_allclose(client.predict(images).probabilities,
                                 by_label.probabilities, atol=1e-6)
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert 'server stopped' in rest
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()


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


def test_tf_serving_docker_command():
  """The real TF Serving's command line (printed: no Docker engine here)."""
  result = subprocess.run(
      ['bash', os.path.join(REPO, 'serving', 'tf_serving_docker.sh'),
       '/models/base'], env={**os.environ, 'DRY_RUN': '1'},
      capture_output=True, text=True, check=True)
  words = result.stdout.split()
  assert words[:2] == ['docker', 'run']
  assert '8500:8500' in words and '8501:8501' in words
  assert ('type=bind,source=/models/base,target=/models/mnist,readonly'
          in words)
  batching_file = os.path.join(REPO, 'serving', 'batching_parameters.txt')
  assert (f'type=bind,source={batching_file},target=/config/'
          'batching_parameters.txt,readonly') in words
  assert 'MODEL_NAME=mnist' in words
  assert words[-3].startswith('tensorflow/serving:')
  assert words[-2:] == ['--enable_batching=true',
                        '--batching_parameters_file=/config/batching_parameters.txt']
