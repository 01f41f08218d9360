"""Inference (serving/servables/inference.py): `python -m serving` answers as TF
Serving's tensorflow_model_server does.

The behaviours TF Serving's own integration suite
(model_servers/tensorflow_model_server_test.py) relies on, checked against real
server processes started with TF Serving's flag spellings, over gRPC (the
official stubs) and REST: Regress, MultiInference and :regress; Predict fed
shapes the signature does not declare ([1] and [3] against [-1,1], TF Serving runs
the graph as fed); Classify; TF2 SavedModels with several signatures and scalar
outputs; Keras Sequential models saved with tf.saved_model.save. The models are
small ones written by tests/testutil/tf_serving_models.py, not TF Serving's
testdata.

Two servers, started once for the module: one serves the TF1 half_plus_two as
`default` (--model_name/--model_base_path, as the suite does), the other the TF2
and Keras models from a --model_config_file, with --enable_batching.
"""

import concurrent.futures
import http.client
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from models import serving_contract as contract
from serving.core import errors
from serving.model_servers import process as process_lib
from serving.servables import inference
from tests.testutil import tf_serving_models

# Every test here starts model-server or mnist-tfx processes.
pytestmark = pytest.mark.processes

VERSION = 123
REGRESS = contract.REGRESS_METHOD
CLASSIFY = contract.CLASSIFY_METHOD
Code = grpc.StatusCode
START_TIMEOUT = 180


class ServerProcess:
  """`python -m serving <TF Serving flags>` on free loopback ports, gRPC and
  REST, with stubs for its gRPC services."""

  def __init__(self, log_path, *flags):
    self.server = process_lib.ServerProcess(
        *flags, rest_api_port=process_lib.free_port(), log_path=log_path,
        env={'TF_CPP_MIN_LOG_LEVEL': '2'}).start(START_TIMEOUT)
    self.grpc_port, self.rest_port = self.server.grpc_port, self.server.rest_port
    self.channel = grpc.insecure_channel(self.server.grpc_target)
    self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
    self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)

  def rest(self, method, path, body=None, headers=None):
    """(HTTP status, decoded JSON) of one REST call."""
    connection = http.client.HTTPConnection('127.0.0.1', self.rest_port,
                                            timeout=30)
    try:
      payload = None if body is None else (
          body if isinstance(body, bytes) else json.dumps(body).encode())
      connection.request(method, path, body=payload, headers=headers or {})
      response = connection.getresponse()
      return response.status, json.loads(response.read())
    finally:
      connection.close()

  def stop(self):
    self.channel.close()
    self.server.stop()


@pytest.fixture(scope='module')
def servers(tmp_path_factory):
  root = tmp_path_factory.mktemp('conformance')
  version = f'{VERSION:08d}'  # 00000123, as TF Serving's testdata names it.
  tf1_base = root / 'half_plus_two_tf1'
  tf_serving_models.write_tf1_half_plus_two(str(tf1_base / version))
  writers = {
      'tf2': tf_serving_models.write_tf2_half_plus_two,
      'constants': tf_serving_models.write_tf2_constants,
      'keras': tf_serving_models.write_keras_sequential,
      'keras3': lambda d: tf_serving_models.write_keras_sequential(d, legacy=False),
      'keras3_export': tf_serving_models.write_keras3_export,
  }
  entries = []
  for name, write in writers.items():
    write(str(root / name / version))
    entries.append(f'  config {{ name: "{name}" base_path: "{root / name}" '
                   'model_platform: "tensorflow" }')
  config = root / 'models.config'
  config.write_text('model_config_list {\n' + '\n'.join(entries) + '\n}\n')
  started = [ServerProcess(str(root / 'tf1.log'), '--model_name=default',
                           f'--model_base_path={tf1_base}')]
  try:
    started.append(ServerProcess(str(root / 'multi.log'),
                                 f'--model_config_file={config}',
                                 '--enable_batching'))
    yield {'tf1': started[0], 'multi': started[1]}
  finally:
    for server in started:
      server.stop()


@pytest.fixture(scope='module')
def tf1(servers):
  return servers['tf1']


@pytest.fixture(scope='module')
def multi(servers):
  return servers['multi']


# --- request builders ----------------------------------------------------------------
def _example(**features):
  example = example_pb2.Example()
  for key, value in features.items():
    example.features.feature[key].float_list.value.append(value)
  return example


def predict_request(model, value, shape, signature='', output_filter=(),
                    key='x', dtype=np.float32):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  if signature:
    request.model_spec.signature_name = signature
  request.inputs[key].CopyFrom(
      tf.make_tensor_proto(np.asarray(value, dtype).reshape(shape)))
  request.output_filter.extend(output_filter)
  return request


def regress_request(model, signature, *xs, context=None):
  request = regression_pb2.RegressionRequest()
  request.model_spec.name = model
  request.model_spec.signature_name = signature
  if context:
    request.input.example_list_with_context.context.CopyFrom(
        _example(**context))
    examples = request.input.example_list_with_context.examples
  else:
    examples = request.input.example_list.examples
  for x in xs:
    examples.add().CopyFrom(_example(x=x))
  return request


def classify_request(model, signature, *xs):
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = model
  request.model_spec.signature_name = signature
  for x in xs:
    request.input.example_list.examples.add().CopyFrom(_example(x=x))
  return request


def multi_request(tasks, *xs):
  request = inference_pb2.MultiInferenceRequest()
  for model, signature, method in tasks:
    task = request.tasks.add()
    if model is not None:
      task.model_spec.name = model
    task.model_spec.signature_name = signature
    task.method_name = method
  for x in xs:
    request.input.example_list.examples.add().CopyFrom(_example(x=x))
  return request


def rpc_error(call, request) -> grpc.RpcError:
  with pytest.raises(grpc.RpcError) as raised:
    call(request, timeout=30)
  return raised.value


def assert_spec(spec, name, signature, version=VERSION):
  assert (spec.name, spec.signature_name, spec.version.value) == (
      name, signature, version)


def values(proto):
  return np.array(proto.float_val).reshape(
      [d.size for d in proto.tensor_shape.dim])


# --- Regress ------------------------------------------------------------------------
@pytest.mark.parametrize('server_fixture,model', [('tf1', 'default'),
                                                  ('multi', 'tf2')])
def test_regress(request, server_fixture, model):
  """The TF1 graph and the TF2 model answer alike."""
  server = request.getfixturevalue(server_fixture)
  response = server.stub.Regress(regress_request(model, 'regress_x_to_y', 2.0),
                                 timeout=30)
  assert [r.value for r in response.result.regressions] == [3.0]
  assert_spec(response.model_spec, model, 'regress_x_to_y')


def test_regress_several_examples_with_context(tf1):
  response = tf1.stub.Regress(
      regress_request('default', 'regress_x_to_y2', 2.0, 4.0,
                      context={'x2': 9.0}), timeout=30)
  assert [r.value for r in response.result.regressions] == [4.0, 5.0]


def test_regress_errors_are_tf_servings(tf1):
  request = regress_request('default', 'regress_x_to_y', 2.0)
  request.ClearField('model_spec')
  error = rpc_error(tf1.stub.Regress, request)
  assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT,
                                             'Missing ModelSpec')
  error = rpc_error(tf1.stub.Regress, regress_request('default', 'nope', 2.0))
  assert (error.code(), error.details()) == (
      Code.INVALID_ARGUMENT, 'No signature was found with the name: nope')
  # serving_default is the predict signature: x -> y, not inputs -> outputs.
  error = rpc_error(tf1.stub.Regress, regress_request('default', '', 2.0))
  assert error.code() == Code.INVALID_ARGUMENT
  assert error.details().startswith('No regression inputs found in SignatureDef:')
  error = rpc_error(tf1.stub.Regress, regress_request('default', 'regress_x_to_y'))
  assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT,
                                             'Input is empty.')
  error = rpc_error(tf1.stub.Regress, regress_request('nope', 'regress_x_to_y', 2.))
  assert error.code() == Code.NOT_FOUND
  # Its `inputs` is the float tensor x2: serialized examples cannot be fed.
  error = rpc_error(tf1.stub.Regress,
                    regress_request('default', 'regress_x2_to_y3', 2.0))
  assert error.code() == Code.INVALID_ARGUMENT


def test_regress_rest(tf1):
  status, body = tf1.rest('POST', '/v1/models/default:regress', {
      'signature_name': 'regress_x_to_y', 'examples': [{'x': 2.0}]})
  assert (status, body) == (200, {'results': [3.0]})
  status, body = tf1.rest(
      'POST', f'/v1/models/default/versions/{VERSION}:regress',
      {'signature_name': 'regress_x_to_y2', 'context': {'x2': 1.0},
       'examples': [{'x': 2.0}, {'x': [4.0]}]},
      # What urllib sends by default, as TF Serving's own test client does.
      headers={'Content-Type': 'application/x-www-form-urlencoded'})
  assert (status, body) == (200, {'results': [4.0, 5.0]})
  status, body = tf1.rest('POST', '/v1/models/default:regress',
                          {'signature_name': 'regress_x_to_y'})
  assert status == 400
  assert "key 'examples' is expected" in body['error']
  status, body = tf1.rest('POST', '/v1/models/default:regress',
                          {'signature_name': 'nope', 'examples': [{'x': 2.0}]})
  assert (status, body) == (
      400, {'error': 'No signature was found with the name: nope'})


def test_regress_rest_tf2(multi):
  status, body = multi.rest('POST', '/v1/models/tf2:regress', {
      'signature_name': 'regress_x_to_y', 'examples': [{'x': 2.0}, {'x': 3.0}]})
  assert (status, body) == (200, {'results': [3.0, 3.5]})


# --- MultiInference -------------------------------------------------------------------
def _check_multi_inference(stub, model):
  response = stub.MultiInference(multi_request(
      [(model, 'regress_x_to_y', REGRESS), (model, 'classify_x_to_y', CLASSIFY)],
      2.0), timeout=30)
  assert len(response.results) == 2
  regression, classification = response.results
  assert [r.value for r in regression.regression_result.regressions] == [3.0]
  [classes] = classification.classification_result.classifications
  assert [(c.label, c.score) for c in classes.classes] == [('', 3.0)]
  assert_spec(regression.model_spec, model, 'regress_x_to_y')
  assert_spec(classification.model_spec, model, 'classify_x_to_y')


def test_multi_inference(tf1):
  _check_multi_inference(tf1.stub, 'default')


def test_multi_inference_tf2(multi):
  _check_multi_inference(multi.stub, 'tf2')


def test_multi_inference_several_examples_and_regressions(tf1):
  response = tf1.stub.MultiInference(multi_request(
      [('default', 'regress_x_to_y', REGRESS),
       ('default', 'regress_x_to_y2', REGRESS)], 2.0, 4.0), timeout=30)
  assert [[r.value for r in result.regression_result.regressions]
          for result in response.results] == [[3.0, 4.0], [4.0, 5.0]]


@pytest.mark.parametrize('tasks, code, message', [
    ([], Code.INVALID_ARGUMENT, 'ModelSpec has no name specified.'),
    ([('default', 'regress_x_to_y', REGRESS), ('other', 'classify_x_to_y',
                                               CLASSIFY)],
     Code.INVALID_ARGUMENT,
     'All ModelSpecs in a MultiInferenceRequest must access the same model '
     'name.'),
    ([('default', 'regress_x_to_y', REGRESS), (None, 'classify_x_to_y',
                                               CLASSIFY)],
     Code.INVALID_ARGUMENT, 'Found ModelSpec with an empty model name.'),
    ([('default', 'regress_x_to_y', REGRESS), ('default', 'regress_x_to_y',
                                               REGRESS)],
     Code.INVALID_ARGUMENT, 'Duplicate evaluation of signature: regress_x_to_y'),
    ([('default', 'nope', REGRESS)], Code.INVALID_ARGUMENT,
     'Requested signature not found in model graph: nope'),
    ([('default', 'regress_x_to_y', contract.PREDICT_METHOD)],
     Code.UNIMPLEMENTED,
     'Unsupported signature method_name: tensorflow/serving/predict'),
    ([('nope', 'regress_x_to_y', REGRESS)], Code.NOT_FOUND, None),
])
def test_multi_inference_errors_are_tf_servings(tf1, tasks, code, message):
  error = rpc_error(tf1.stub.MultiInference, multi_request(tasks, 2.0))
  assert error.code() == code
  if message:
    assert error.details() == message


def test_multi_inference_checks_each_task_signature(tf1):
  error = rpc_error(tf1.stub.MultiInference, multi_request(
      [('default', 'serving_default', CLASSIFY)], 2.0))
  assert error.code() == Code.INVALID_ARGUMENT
  assert error.details().startswith(
      'No classification inputs found in SignatureDef:')
  error = rpc_error(tf1.stub.MultiInference, multi_request(
      [('default', 'regress_x_to_y', REGRESS)]))
  assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT,
                                             'Input is empty.')


# --- Classify -----------------------------------------------------------------------
@pytest.mark.parametrize('which, model', [('tf1', 'default'), ('multi', 'tf2')])
def test_classify(servers, which, model):
  response = servers[which].stub.Classify(
      classify_request(model, 'classify_x_to_y', 2.0), timeout=30)
  [classes] = response.result.classifications
  assert [(c.label, c.score) for c in classes.classes] == [('', 3.0)]
  assert_spec(response.model_spec, model, 'classify_x_to_y')


def test_classify_rest(tf1):
  status, body = tf1.rest('POST', '/v1/models/default:classify', {
      'signature_name': 'classify_x_to_y', 'examples': [{'x': 2.0}]})
  assert (status, body) == (200, {'results': [[['', 3.0]]]})


# --- Predict: shapes as fed -------------------------------------------------------------
@pytest.mark.parametrize('shape, x, want', [
    ([1], [2.0], [3.0]),             # What TF Serving's suite sends.
    ([1, 1], [2.0], [[3.0]]),        # The declared layout.
    ([3], [2.0, 3.0, 4.0], [3.0, 3.5, 4.0]),
    ([], 4.0, 4.0),
])
def test_predict_runs_the_shape_it_is_fed(tf1, shape, x, want):
  for output_filter in ((), ('y',)):
    response = tf1.stub.Predict(
        predict_request('default', x, shape, output_filter=output_filter),
        timeout=30)
    assert list(response.outputs) == ['y']
    y = response.outputs['y']
    assert y.dtype == types_pb2.DT_FLOAT
    assert len(y.float_val) == max(1, int(np.prod(shape)))
    np.testing.assert_array_equal(values(y), want)
    assert_spec(response.model_spec, 'default', 'serving_default')


def test_predict_of_a_regression_signature_feeds_its_float_input(tf1):
  response = tf1.stub.Predict(predict_request(
      'default', [2.0], [1], signature='regress_x2_to_y3', key='inputs'),
                              timeout=30)
  np.testing.assert_array_equal(values(response.outputs['outputs']), [4.0])


def test_predict_still_checks_names_and_dtypes(tf1):
  error = rpc_error(tf1.stub.Predict,
                    predict_request('default', [2.0], [1], key='z'))
  assert error.code() == Code.INVALID_ARGUMENT
  assert error.details().startswith(
      'input size does not match signature: 1!=1 len({z}) != len({x}).')
  error = rpc_error(tf1.stub.Predict, predict_request(
      'default', [2.0], [1], dtype=np.float64))
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'DT_DOUBLE' in error.details()
  error = rpc_error(tf1.stub.Predict, predict_request(
      'default', [2.0], [1], output_filter=('y', 'y')))
  assert (error.code(), error.details()) == (
      Code.INVALID_ARGUMENT, 'duplicate output tensor alias: y')
  request = predict_request('default', [2.0], [1])
  request.ClearField('model_spec')
  error = rpc_error(tf1.stub.Predict, request)
  assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT,
                                             'Missing ModelSpec')


@pytest.mark.parametrize('body, want', [
    ({'instances': [2.0, 3.0, 4.0]}, {'predictions': [3.0, 3.5, 4.0]}),
    ({'inputs': [2.0, 3.0, 4.0]}, {'outputs': [3.0, 3.5, 4.0]}),
    ({'instances': [[2.0], [3.0]]}, {'predictions': [[3.0], [3.5]]}),
])
def test_predict_rest_runs_the_shape_it_is_fed(tf1, body, want):
  assert tf1.rest('POST', '/v1/models/default:predict', body) == (200, want)


def test_predict_tf2_fixed_input_signature_runs_other_shapes(multi):
  # The predict function was traced for TensorSpec([1]); TF Serving feeds the
  # graph whatever shape comes.
  for shape, x, want in (([1], [2.0], [3.0]),
                         ([3], [2.0, 3.0, 4.0], [3.0, 3.5, 4.0])):
    response = multi.stub.Predict(predict_request('tf2', x, shape), timeout=30)
    np.testing.assert_array_equal(values(response.outputs['y']), want)
    assert_spec(response.model_spec, 'tf2', 'serving_default')
  status, body = multi.rest('POST', '/v1/models/tf2:predict',
                            {'instances': [2.0, 3.0, 4.0]})
  assert (status, body) == (200, {'predictions': [3.0, 3.5, 4.0]})


# --- TF2 SavedModel with several signatures and scalar outputs ----------------------------
@pytest.mark.parametrize('signature, want', [('custom_signature_key', 2.0),
                                             ('serving_default', 1.0),
                                             ('', 1.0)])
def test_scalar_outputs_of_several_signatures(multi, signature, want):
  response = multi.stub.Predict(predict_request(
      'constants', [2.0], [1], signature=signature, output_filter=['y']),
                                timeout=30)
  y = response.outputs['y']
  assert list(y.float_val) == [want] and not y.tensor_shape.dim
  assert_spec(response.model_spec, 'constants', signature or 'serving_default')


def test_scalar_output_rest(multi):
  status, body = multi.rest('POST', '/v1/models/constants:predict', {
      'signature_name': 'custom_signature_key', 'inputs': [2.0]})
  assert (status, body) == (200, {'outputs': 2.0})


# --- Keras Sequential models saved with tf.saved_model.save -------------------------------
def _signature_keys(server, model):
  request = get_model_metadata_pb2.GetModelMetadataRequest(
      metadata_field=['signature_def'])
  request.model_spec.name = model
  response = server.stub.GetModelMetadata(request, timeout=30)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata['signature_def'].Unpack(signatures)
  default = signatures.signature_def['serving_default']
  return sorted(default.inputs), sorted(default.outputs)


def test_keras2_sequential(multi):
  # Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1) names the signature after the
  # Input layer and the last layer, as TF Serving's suite expects.
  assert _signature_keys(multi, 'keras') == (['x'], ['y'])
  response = multi.stub.Predict(predict_request('keras', [2.0], [1, 1]),
                                timeout=30)
  np.testing.assert_array_equal(values(response.outputs['y']), [[2.0]])
  assert_spec(response.model_spec, 'keras', 'serving_default')
  status, body = multi.rest('POST', '/v1/models/keras:predict',
                            {'instances': [[2.0], [3.0]]})
  assert (status, body) == (200, {'predictions': [[2.0], [3.0]]})


def test_keras2_sequential_batches_concurrent_requests(multi):
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    futures = [pool.submit(multi.stub.Predict,
                           predict_request('keras', [float(i)], [1, 1]), 30)
               for i in range(16)]
    for i, future in enumerate(futures):
      np.testing.assert_array_equal(values(future.result().outputs['y']),
                                    [[float(i)]])


def test_a_shape_the_graph_cannot_run_fails_as_in_tensorflow(multi):
  # TF Serving feeds [3] to the Dense layer's MatMul, which refuses it; the
  # error says which shape the signature declares.
  error = rpc_error(multi.stub.Predict, predict_request('keras', [1., 2., 3.],
                                                        [3]))
  assert error.code() == Code.INVALID_ARGUMENT
  assert '[3]' in error.details() and '[-1,1]' in error.details()


def test_keras3_tf_saved_model_save_fails_at_request_time_as_in_tf_serving(multi):
  # Keras 3's tf.saved_model.save output loads, but its graph reads variables
  # the MetaGraph's restore op does not create; TF Serving answers
  # FAILED_PRECONDITION "Could not find variable ..." (tensorflow/serving#2226,
  # keras-team/keras#19274), and so does this server.
  status = multi.model_stub.GetModelStatus(
      get_model_status_pb2.GetModelStatusRequest(
          model_spec={'name': 'keras3'}), timeout=30)
  [version] = status.model_version_status
  assert version.state == version.AVAILABLE
  assert _signature_keys(multi, 'keras3') == (['inputs'], ['output_0'])
  error = rpc_error(multi.stub.Predict,
                    predict_request('keras3', [2.0], [1, 1], key='inputs'))
  assert error.code() == Code.FAILED_PRECONDITION
  assert 'Could not find variable' in error.details()


def test_keras3_model_export(multi):
  assert _signature_keys(multi, 'keras3_export') == (['x'], ['output_0'])
  response = multi.stub.Predict(predict_request('keras3_export', [2.0], [1, 1]),
                                timeout=30)
  np.testing.assert_array_equal(values(response.outputs['output_0']), [[2.0]])


# --- result conversion, in-process --------------------------------------------------------
def test_regression_result_checks_are_tf_servings():
  def fill(value, examples=2):
    inference.fill_regression_result(np.asarray(value), examples,
                                     regression_pb2.RegressionResult())

  fill(np.zeros([2], np.float32))
  fill(np.zeros([2, 1], np.float32))
  for value, message in (
      (np.zeros([2, 2], np.float32), 'Expected output Tensor shape to be either '
       '[batch_size] or [batch_size, 1] but got [2,2]'),
      (np.zeros([3], np.float32),
       'Input batch size did not match output batch size: 2 vs. 3'),
      (np.zeros([2], np.float64),
       'Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE')):
    with pytest.raises(errors.ServingError) as raised:
      fill(value)
    assert raised.value.code == Code.INVALID_ARGUMENT
    assert raised.value.message == message
