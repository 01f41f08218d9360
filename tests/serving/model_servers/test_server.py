"""The model server (serving/model_servers/server.py) run with
tensorflow_model_server's command line (`python -m serving`,
serving/model_servers/options.py): each flag the TF Serving suite and its users
rely on, checked on a real server process over gRPC (official stubs) and REST.

The model is a small TF2 SavedModel written here (y = 0.5 x + 2, batch axis free),
so each server starts in a few seconds.
"""

import datetime
import json
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import serving_contract as contract
from pipeline import config as config_lib
from serving.model_servers import process as process_lib
from tests.testutil import model_servers

# Every test here starts model-server or mnist-tfx processes.
pytestmark = pytest.mark.processes


def _half_plus_two(path: str) -> None:
  module = tf.Module()
  module.serve = tf.function(
      lambda x: {'y': 0.5 * x + 2.0},
      input_signature=[tf.TensorSpec([None, 1], tf.float32, name='x')])
  tf.saved_model.save(module, path, signatures={'serving_default': module.serve})


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  """Base paths of two models: half_plus_two (version 1) and another copy (7)."""
  root = tmp_path_factory.mktemp('models')
  _half_plus_two(str(root / 'half_plus_two' / '1'))
  _half_plus_two(str(root / 'other' / '7'))
  return {'half_plus_two': str(root / 'half_plus_two'), 'other': str(root / 'other')}


def Server(*flags, **settings) -> process_lib.ServerProcess:  # pylint: disable=invalid-name
  """`python -m serving FLAGS` on loopback (REST only with --rest_api_port),
  started and answering."""
  return process_lib.ServerProcess(*flags, **settings).start()


def _predict_output(channel, model='half_plus_two', value=2.0):
  """The output tensor proto `y` of one Predict call."""
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  request.inputs['x'].CopyFrom(tf.make_tensor_proto([[value]], tf.float32))
  return stub.Predict(request, timeout=10).outputs['y']


def _predict(channel, model='half_plus_two', value=2.0):
  return tf.make_ndarray(_predict_output(channel, model, value)).ravel().tolist()


def _rest(url, body=None, method=None):
  data = None if body is None else json.dumps(body).encode()
  request = urllib.request.Request(url, data=data, method=method)
  try:
    with urllib.request.urlopen(request, timeout=20) as response:
      return response.status, dict(response.headers), response.read()
  except urllib.error.HTTPError as e:
    return e.code, dict(e.headers), e.read()


@pytest.fixture(scope='module')
def plain_server(models):
  """One server for the tests of TF Serving's defaults: every flag spelled as TF
  Serving spells it, none of them turning on an optional service."""
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              '--enable_model_warmup', '--file_system_poll_wait_seconds=0',
              '--rest_api_timeout_in_ms=5000', '--rest_api_num_threads=2',
              '--num_load_threads=0', '--load_retry_interval_micros=1000',
              '--saved_model_tags=serve', '--tensorflow_session_parallelism=0',
              '--enable_signature_method_name_check=false') as server:
    yield server


@pytest.fixture(scope='module')
def tuned_server(models):
  """One server for the flags that change how gRPC answers, which do not
  interfere: the health service, channel arguments, tensor_content outputs."""
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              '--enable_grpc_healthcheck_service',
              '--enable_serialization_as_tensor_content',
              '--grpc_channel_arguments=grpc.max_connection_age_ms=1000,'
              'grpc.lb_policy_name=grpclb,grpc.so_reuseaddr=1') as server:
    yield server


def test_tf_serving_defaults_and_syntax(plain_server):
  """Bare booleans, --flag=value, REST off unless --rest_api_port, batching off
  unless --enable_batching, and every TF Serving flag accepted."""
  assert 'REST API' not in plain_server.text()
  assert 'batching: off' in plain_server.text()
  with grpc.insecure_channel(f'127.0.0.1:{plain_server.grpc_port}') as channel:
    assert _predict(channel) == [3.0]


def test_inapplicable_flags_get_one_warning_each(models):
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              '--prefer_tflite_model=true', '--per_process_gpu_memory_fraction=0.5',
              '--enable_profiler=false') as server:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel) == [3.0]
    server.stop()
    warnings = [line for line in server.text().splitlines()
                if line.startswith('warning: ')]
  assert [w.split()[1] for w in warnings] == [
      '--prefer_tflite_model', '--per_process_gpu_memory_fraction',
      '--enable_profiler']


def test_unix_socket_only(models, tmp_path):
  socket_path = str(tmp_path / 'tf-serving.sock')
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              grpc_socket_path=socket_path, port=0):
    with grpc.insecure_channel(f'unix:{socket_path}') as channel:
      assert _predict(channel) == [3.0]


def test_grpc_channel_arguments(tuned_server):
  # max_connection_age_ms: the server closes connections after 1 s; the
  # client reconnects, so calls keep succeeding across that.
  with grpc.insecure_channel(f'127.0.0.1:{tuned_server.grpc_port}') as channel:
    for _ in range(3):
      assert _predict(channel) == [3.0]
      time.sleep(0.8)


def test_health_service(tuned_server):
  with grpc.insecure_channel(f'127.0.0.1:{tuned_server.grpc_port}') as channel:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ('', 'ModelService', 'PredictionService'):
      response = health.Check(health_pb2.HealthCheckRequest(service=service),
                              timeout=10)
      assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
      health.Check(health_pb2.HealthCheckRequest(service='nope'), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_no_health_service_unless_asked(plain_server):
  with grpc.insecure_channel(f'127.0.0.1:{plain_server.grpc_port}') as channel:
    with pytest.raises(grpc.RpcError) as error:
      health_pb2_grpc.HealthStub(channel).Check(
          health_pb2.HealthCheckRequest(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _certificates(directory):
  """A CA, a server certificate for localhost and a client certificate."""
  from cryptography import x509  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives import hashes  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives import serialization  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=g-import-not-at-top
  from cryptography.x509.oid import NameOID  # pylint: disable=g-import-not-at-top
  now = datetime.datetime.now(datetime.timezone.utc)

  def make(name, issuer=None, issuer_key=None, ca=False, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True))
    if san:
      builder = builder.add_extension(
          x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert, key, pem_key, cert.public_bytes(serialization.Encoding.PEM)

  ca, ca_key, _, ca_pem = make('test CA', ca=True)
  _, _, server_key, server_pem = make('localhost', ca, ca_key, san='localhost')
  _, _, client_key, client_pem = make('client', ca, ca_key)
  return dict(ca=ca_pem, server_key=server_key, server_cert=server_pem,
              client_key=client_key, client_cert=client_pem)


def _ssl_config(path, pems, client_verify):
  quote = lambda pem: json.dumps(pem.decode())  # a valid text-proto string
  path.write_text(f'server_key: {quote(pems["server_key"])}\n'
                  f'server_cert: {quote(pems["server_cert"])}\n'
                  f'custom_ca: {quote(pems["ca"])}\n'
                  f'client_verify: {str(client_verify).lower()}\n')
  return str(path)


@pytest.mark.parametrize('client_verify', [False, True])
def test_tls(models, tmp_path, client_verify):
  pems = _certificates(tmp_path)
  config = _ssl_config(tmp_path / 'ssl.txt', pems, client_verify)
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              f'--ssl_config_file={config}') as server:
    target = f'localhost:{server.grpc_port}'
    with_client = grpc.ssl_channel_credentials(
        root_certificates=pems['ca'], private_key=pems['client_key'],
        certificate_chain=pems['client_cert'])
    with grpc.secure_channel(target, with_client) as channel:
      assert _predict(channel) == [3.0]
    without_client = grpc.ssl_channel_credentials(root_certificates=pems['ca'])
    with grpc.secure_channel(target, without_client) as channel:
      if client_verify:
        with pytest.raises(grpc.RpcError) as error:
          _predict(channel)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
      else:
        assert _predict(channel) == [3.0]
    with grpc.insecure_channel(target) as channel:  # plaintext is refused
      with pytest.raises(grpc.RpcError) as error:
        _predict(channel)
      assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_prometheus_metrics(models, tmp_path):
  config = tmp_path / 'monitoring.txt'
  config.write_text('prometheus_config: {enable: true, path: "/metrics/here"}\n')
  rest_port = process_lib.free_port()
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              f'--rest_api_port={rest_port}',
              f'--monitoring_config_file={config}') as server:
    base = f'http://127.0.0.1:{rest_port}'
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel) == [3.0]
      with pytest.raises(grpc.RpcError):
        _predict(channel, model='missing')
    status, _, _ = _rest(f'{base}/v1/models/half_plus_two:predict',
                         {'instances': [[2.0]]})
    assert status == 200
    status, headers, body = _rest(f'{base}/metrics/here')
  assert status == 200
  assert headers['Content-Type'].startswith('text/plain')
  text = body.decode()
  for line in (
      ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"} 2.0',
      ':tensorflow:serving:request_count{model_name="missing",status="NOT_FOUND"} 1.0',
      '# TYPE :tensorflow:serving:request_latency histogram',
      ':tensorflow:serving:request_latency_count{API="Predict",entrypoint="GRPC",'
      'model_name="half_plus_two"} 1.0',
      ':tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",'
      'model_name="half_plus_two"} 1.0',
      ':mnist_tfx:serving:model_version_state{model_name="half_plus_two",'
      'state="AVAILABLE",version="1"} 1.0'):
    assert line in text, text


def test_rest_threads_timeout_and_cors(models):
  rest_port = process_lib.free_port()
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              f'--rest_api_port={rest_port}', '--rest_api_num_threads=1',
              '--rest_api_enable_cors_support'):
    url = f'http://127.0.0.1:{rest_port}/v1/models/half_plus_two:predict'
    status, headers, body = _rest(url, {'instances': [[2.0], [4.0]]})
    assert (status, json.loads(body)) == (200, {'predictions': [[3.0], [4.0]]})
    assert headers['Access-Control-Allow-Origin'] == '*'
    request = urllib.request.Request(
        url, method='OPTIONS', headers={'Origin': 'http://example.test'})
    with urllib.request.urlopen(request, timeout=10) as response:
      assert response.status == 200
      assert response.headers['Access-Control-Allow-Methods'] == 'POST, GET'


def test_rest_timeout_answers_504(models, tmp_path):
  """A model call that outlives --rest_api_timeout_in_ms is answered 504."""
  slow = tf.Module()
  slow.serve = tf.function(
      lambda x: {'y': x + tf.reduce_sum(tf.random.uniform([4000, 4000]) @
                                        tf.random.uniform([4000, 400])) * 0},
      input_signature=[tf.TensorSpec([None, 1], tf.float32, name='x')])
  tf.saved_model.save(slow, str(tmp_path / 'slow' / '1'),
                      signatures={'serving_default': slow.serve})
  rest_port = process_lib.free_port()
  with Server('--model_name=slow', f'--model_base_path={tmp_path / "slow"}',
              f'--rest_api_port={rest_port}', '--rest_api_timeout_in_ms=1',
              '--enable_model_warmup=false'):
    status, _, body = _rest(
        f'http://127.0.0.1:{rest_port}/v1/models/slow:predict',
        {'instances': [[2.0]]})
  assert status == 504, body
  assert 'Timed out' in json.loads(body)['error']


def _config_file(path, entries):
  path.write_text('model_config_list {\n' + ''.join(
      f'  config {{ name: "{name}" base_path: "{base}" model_platform: '
      f'"tensorflow" }}\n' for name, base in entries) + '}\n')


def test_model_config_file_is_reread(models, tmp_path):
  config = tmp_path / 'models.config'
  _config_file(config, [('half_plus_two', models['half_plus_two'])])
  with Server(f'--model_config_file={config}',
              '--model_config_file_poll_wait_seconds=1') as server:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel) == [3.0]
      _config_file(config, [('other', models['other'])])
      status = model_service_pb2_grpc.ModelServiceStub(channel)
      deadline = time.monotonic() + 30
      while True:  # until 'other' answers and half_plus_two is gone
        try:
          assert _predict(channel, model='other') == [3.0]
          _predict(channel)
        except grpc.RpcError as e:
          if e.code() == grpc.StatusCode.NOT_FOUND and _other_serves(channel):
            break
        assert time.monotonic() < deadline, 'config change not applied in 30 s'
        time.sleep(0.5)
      response = status.GetModelStatus(
          get_model_status_pb2.GetModelStatusRequest(
              model_spec={'name': 'other'}), timeout=10)
      assert [(v.version, v.state) for v in response.model_version_status] == [
          (7, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


def _other_serves(channel) -> bool:
  try:
    return _predict(channel, model='other') == [3.0]
  except grpc.RpcError:
    return False


def test_model_config_file_is_read_once_without_polling(models, tmp_path):
  config = tmp_path / 'models.config'
  _config_file(config, [('half_plus_two', models['half_plus_two'])])
  with Server(f'--model_config_file={config}') as server:
    _config_file(config, [('other', models['other'])])
    time.sleep(2)
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel) == [3.0]


def test_bad_model_config_file(tmp_path):
  config = tmp_path / 'bad.config'
  config.write_text('improperly formatted file\n')
  server = process_lib.ServerProcess(f'--model_config_file={config}')
  with pytest.raises(process_lib.ServerExited):
    server.start()
  assert server.stop() == 1
  err = server.text()
  assert 'Error parsing text-format tensorflow.serving.ModelServerConfig' in err
  assert "Invalid protobuf file: '" in err


def test_batching_parameters_file_needs_enable_batching(models):
  server = process_lib.ServerProcess(
      f'--model_base_path={models["half_plus_two"]}',
      '--batching_parameters_file=serving/batching_parameters.txt',
      cwd=config_lib.REPO_ROOT)
  with pytest.raises(process_lib.ServerExited):
    server.start()
  assert server.stop() == 2
  err = server.text()
  assert ('batching_parameters_file is set without setting '
          'server_options.enable_batching to true') in err


def test_output_as_tensor_content(tuned_server, plain_server):
  for server, packed in ((tuned_server, True), (plain_server, False)):
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      output = _predict_output(channel)
    assert bool(output.tensor_content) == packed
    assert bool(output.float_val) != packed
    np.testing.assert_array_equal(tf.make_ndarray(output), [[3.0]])


def test_reload_config_request_replaces_the_models(models):
  """ModelService.HandleReloadConfigRequest, as TF Serving's."""
  from tensorflow_serving.apis import model_management_pb2  # pylint: disable=g-import-not-at-top
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}') as server:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = model_service_pb2_grpc.ModelServiceStub(channel)
      request = model_management_pb2.ReloadConfigRequest()
      model = request.config.model_config_list.config.add()
      model.name, model.base_path, model.model_platform = (
          'other', models['other'], 'tensorflow')
      response = stub.HandleReloadConfigRequest(request, timeout=60)
      assert response.status.error_code == 0
      assert _predict(channel, model='other') == [3.0]
      with pytest.raises(grpc.RpcError) as error:
        _predict(channel)
      assert error.value.code() == grpc.StatusCode.NOT_FOUND
      bad = model_management_pb2.ReloadConfigRequest()
      bad.config.custom_model_config.Pack(request)  # not a ModelConfigList
      with pytest.raises(grpc.RpcError) as error:
        stub.HandleReloadConfigRequest(bad, timeout=60)
      assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
      assert _predict(channel, model='other') == [3.0]  # still serving


@pytest.mark.parametrize('per_model', [False, True])
def test_per_model_batching_parameters(tmp_path, per_model):
  """--enable_per_model_batching_parameters: a version's batching_params.pbtxt
  (max_batch_size 1 here) replaces the server's (16)."""
  _half_plus_two(str(tmp_path / 'm' / '1'))
  (tmp_path / 'm' / '1' / 'batching_params.pbtxt').write_text(
      'max_batch_size { value: 1 }\n')
  server_file = tmp_path / 'batching.txt'
  server_file.write_text('max_batch_size { value: 16 }\n'
                         'batch_timeout_micros { value: 50000 }\n')
  server = model_servers.start_server(
      ('m', str(tmp_path / 'm')), enable_batching=True,
      batching_parameters_file=str(server_file),
      enable_per_model_batching_parameters=per_model,
      file_system_poll_wait_seconds=0)
  try:
    with (model_servers.model_calls(server, 'm') as calls,
          grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel):
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      request = predict_pb2.PredictRequest()
      request.model_spec.name = 'm'
      request.inputs['x'].CopyFrom(tf.make_tensor_proto([[2.0]], tf.float32))
      futures = [stub.Predict.future(request, 30) for _ in range(8)]
      assert all(f.result().outputs['y'].float_val == [3.0] for f in futures)
    sizes = calls[contract.DEFAULT_SIGNATURE]
  finally:
    server.stop()
  assert sum(n * count for n, count in sizes.items()) == 8
  assert (max(sizes) == 1) == per_model, sizes


def test_session_config_file_sets_the_threads(models, tmp_path):
  config = tmp_path / 'session.config'
  config.write_text('intra_op_parallelism_threads: 1\n'
                    'inter_op_parallelism_threads: 2\n')
  with Server('--model_name=half_plus_two',
              f'--model_base_path={models["half_plus_two"]}',
              f'--tensorflow_session_config_file={config}') as server:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel) == [3.0]
    server.stop()
    assert 'TensorFlow threads: intra-op 1, inter-op 2' in server.text()


def test_models_load_side_by_side(models, tmp_path):
  config = tmp_path / 'models.config'
  _config_file(config, [('half_plus_two', models['half_plus_two']),
                        ('other', models['other'])])
  with Server(f'--model_config_file={config}', '--num_load_threads=2') as server:
    assert 'model half_plus_two: versions [1]' in server.text()
    assert 'model other: versions [7]' in server.text()
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      assert _predict(channel, model='other') == [3.0]
