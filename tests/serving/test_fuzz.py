"""Fuzzing the model server: whatever a client sends, the answer is OK or a client
error, never a server error, and the server goes on answering.

A real `python -m serving` process serves a stand-in with the pushed model's
signatures (testutil/stand_in_models.py). Hypothesis sends it random and mutated
REST requests (bodies, headers, paths, methods) and random and mutated gRPC
requests (Predict, Classify, Regress, MultiInference; serialized inputs that are
no tf.Example). A 5xx status, INTERNAL, UNKNOWN or a dropped connection fails the
test; after each test a good request must still be answered. The examples are
derandomized and bounded, so CI sees the same few hundred requests every time;
bench/soak_benchmark.py runs the long mixed traffic.
"""

import http.client
import json

import grpc
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from models import serving_contract as contract
from serving.model_servers import process as process_lib
from tests.testutil import mnist_requests
from tests.testutil import stand_in_models

pytestmark = pytest.mark.processes

MODEL = contract.MODEL_NAME
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                database=None, suppress_health_check=list(HealthCheck))
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                 grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNIMPLEMENTED,
                 grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture(scope='module')
def server(tmp_path_factory):
  base_path = str(tmp_path_factory.mktemp('fuzz') / MODEL)
  stand_in_models.write_version(base_path, 1)
  process = process_lib.ServerProcess(
      f'--model_name={MODEL}', f'--model_base_path={base_path}',
      rest_api_port=process_lib.free_port()).start()
  yield process
  process.stop()


@pytest.fixture(scope='module')
def stub(server):
  with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(autouse=True)
def still_serving(server, stub):
  """After each test's batch of requests, the server answers a good one."""
  yield
  assert server.alive(), ''.join(server.output)
  images = stand_in_models.random_images(2)
  response = stub.Predict(mnist_requests.images_request(images), timeout=30)
  assert response.model_spec.version.value == 1


# --- REST --------------------------------------------------------------------
def _rest(server, method, path, body=b'', headers=None):
  """(status, body) of one request; a dropped connection fails the test."""
  connection = http.client.HTTPConnection('127.0.0.1', server.rest_port,
                                          timeout=30)
  try:
    connection.putrequest(method, path, skip_accept_encoding=True)
    headers = dict(headers or {})
    headers.setdefault('Content-Length', str(len(body)))
    for name, value in headers.items():
      connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    return response.status, response.read()
  finally:
    connection.close()


def _assert_client_answer(status, body):
  assert status < 500, (status, body[:300])
  if status >= 400 and body:
    assert 'error' in json.loads(body), body[:300]


_PATHS = st.sampled_from([
    f'/v1/models/{MODEL}:predict', f'/v1/models/{MODEL}:classify',
    f'/v1/models/{MODEL}:regress', f'/v1/models/{MODEL}/versions/1:predict',
    f'/v1/models/{MODEL}/labels/stable:predict', f'/v1/models/{MODEL}',
    f'/v1/models/{MODEL}/metadata'])
_JSON_SCALARS = (st.none() | st.booleans() | st.integers() |
                 st.floats(allow_nan=True) | st.text(max_size=20))
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (st.lists(inner, max_size=4) |
                   st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=30)


def _good_documents():
  pixels = stand_in_models.random_images(2).astype(float).tolist()
  example = {'image': [int(v) for v in stand_in_models.random_images(1)[0]]}
  return [
      {'instances': pixels, 'signature_name': contract.IMAGES_SIGNATURE},
      {'inputs': {contract.IMAGES_INPUT: pixels},
       'signature_name': contract.IMAGES_SIGNATURE},
      {'instances': [{contract.EXAMPLES_INPUT: {'b64': 'AAAA'}}]},
      {'examples': [example], 'signature_name': contract.CLASSIFY_SIGNATURE},
  ]


@st.composite
def _mutated_documents(draw):
  """A good request with one value somewhere replaced by random JSON."""
  doc = draw(st.sampled_from(_good_documents()))
  parent, key, node = None, None, doc
  for _ in range(draw(st.integers(0, 4))):
    children = (list(node.items()) if isinstance(node, dict)
                else list(enumerate(node)) if isinstance(node, list) else [])
    if not children:
      break
    child_key, child = draw(st.sampled_from(children))
    parent, key, node = node, child_key, child
  replacement = draw(_JSON)
  if parent is None:
    return replacement
  parent[key] = replacement
  return doc


_RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    # JSON text with escapes Python's decoder lets through, and deep nesting.
    st.builds(lambda s: ('{"instances": ["%s"]}' % s).encode(),
              st.sampled_from(['\\udcff', '\\ud800', '\\ud800\\u0041', '\\u0000'])),
    st.builds(lambda depth: (b'{"instances": ' + b'[' * depth + b'1' +
                             b']' * depth + b'}'), st.integers(1, 3000)),
)


@FUZZ
@given(path=_PATHS, doc=_mutated_documents())
def test_rest_mutated_json_gets_a_client_answer(server, path, doc):
  _assert_client_answer(*_rest(server, 'POST', path,
                               json.dumps(doc, allow_nan=True).encode()))


@FUZZ
@given(path=_PATHS, body=_RAW_BODIES)
def test_rest_random_bodies_get_a_client_answer(server, path, body):
  _assert_client_answer(*_rest(server, 'POST', path, body))


@FUZZ
@given(method=st.sampled_from(['GET', 'POST', 'PUT', 'DELETE', 'PATCH',
                               'OPTIONS', 'FOO']),
       path=st.one_of(_PATHS, st.text(
           alphabet=st.characters(min_codepoint=33, max_codepoint=126),
           max_size=60).map(lambda p: '/' + p)),
       headers=st.dictionaries(
           st.sampled_from(['Content-Type', 'Origin', 'Accept',
                            'Transfer-Encoding', 'Expect']),
           st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                   max_size=30), max_size=3))
def test_rest_random_methods_paths_and_headers_get_a_client_answer(
    server, method, path, headers):
  headers.pop('Transfer-Encoding', None)  # the body is sent whole here
  _assert_client_answer(*_rest(server, method, path, b'{}', headers))


@pytest.mark.parametrize('length', ['-1', 'abc', '99999999999', '5'])
def test_rest_bad_content_lengths_get_a_client_answer(server, length):
  status, body = _rest(server, 'POST', f'/v1/models/{MODEL}:predict',
                       b'{"instances": [[1]]}', {'Content-Length': length})
  _assert_client_answer(status, body)
  assert status >= 400


# --- gRPC --------------------------------------------------------------------
def _call(method, request):
  """A gRPC call whose answer must be OK or a client error."""
  try:
    method(request, timeout=30)
  except grpc.RpcError as e:
    assert e.code() in CLIENT_ERRORS, (e.code(), e.details())


_NAMES = st.sampled_from([MODEL, '', 'other']) | st.text(max_size=10)
_SIGNATURES = st.sampled_from([contract.DEFAULT_SIGNATURE,
                               contract.IMAGES_SIGNATURE,
                               contract.CLASSIFY_SIGNATURE, '']) | st.text(
                                   max_size=10)
_INPUT_KEYS = st.sampled_from([contract.EXAMPLES_INPUT, contract.IMAGES_INPUT,
                               contract.CLASSIFY_INPUTS]) | st.text(max_size=8)


@st.composite
def _tensors(draw):
  """A TensorProto of a random dtype and shape, and contents that may or may
  not fit them: tensor_content bytes, a typed list, or strings."""
  dtype = draw(st.sampled_from([types_pb2.DT_FLOAT, types_pb2.DT_STRING,
                                types_pb2.DT_INT64, types_pb2.DT_HALF,
                                types_pb2.DT_BOOL, types_pb2.DT_INVALID]) |
               st.integers(0, 30))
  dims = draw(st.lists(st.integers(-2, 1000) | st.just(10 ** 12), max_size=4))
  tensor = tensor_pb2.TensorProto(
      dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
  kind = draw(st.sampled_from(['content', 'floats', 'strings', 'examples']))
  if kind == 'content':
    tensor.tensor_content = draw(st.binary(max_size=64))
  elif kind == 'floats':
    tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=16)))
  elif kind == 'strings':
    tensor.string_val.extend(draw(st.lists(st.binary(max_size=40), max_size=4)))
  else:
    tensor.string_val.extend(e.SerializeToString() for e in draw(
        st.lists(_examples(), min_size=1, max_size=3)))
  return tensor


@st.composite
def _examples(draw):
  """A tf.Example with random features: right or wrong names, types, lengths."""
  example = example_pb2.Example()
  for name in draw(st.lists(st.sampled_from(['image', 'label']) |
                            st.text(max_size=6), max_size=3)):
    feature = example.features.feature[name]
    kind = draw(st.sampled_from(['int64', 'float', 'bytes']))
    count = draw(st.sampled_from([0, 1, 3, 784, 785]))
    if kind == 'int64':
      feature.int64_list.value.extend(draw(st.lists(
          st.integers(-2 ** 63, 2 ** 63 - 1), min_size=count, max_size=count)))
    elif kind == 'float':
      feature.float_list.value.extend([draw(st.floats(width=32))] * count)
    else:
      feature.bytes_list.value.extend([draw(st.binary(max_size=8))] * min(count, 3))
  return example


def _model_input(draw, examples):
  model_input = input_pb2.Input()
  if draw(st.booleans()):
    model_input.example_list.examples.extend(examples)
  else:
    model_input.example_list_with_context.examples.extend(examples)
    model_input.example_list_with_context.context.CopyFrom(draw(_examples()))
  return model_input


@st.composite
def _predict_requests(draw):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = draw(_NAMES)
  request.model_spec.signature_name = draw(_SIGNATURES)
  if draw(st.booleans()):
    request.model_spec.version.value = draw(st.integers(-5, 5))
  for key in draw(st.lists(_INPUT_KEYS, max_size=3)):
    request.inputs[key].CopyFrom(draw(_tensors()))
  request.output_filter.extend(draw(st.lists(st.text(max_size=8), max_size=2)))
  return request


@st.composite
def _example_requests(draw, request_class):
  request = request_class()
  request.model_spec.name = draw(_NAMES)
  request.model_spec.signature_name = draw(_SIGNATURES)
  request.input.CopyFrom(_model_input(draw, draw(
      st.lists(_examples(), max_size=3))))
  return request


@st.composite
def _multi_inference_requests(draw):
  request = inference_pb2.MultiInferenceRequest()
  for _ in range(draw(st.integers(0, 3))):
    task = request.tasks.add()
    task.model_spec.name = draw(_NAMES)
    task.model_spec.signature_name = draw(_SIGNATURES)
    task.method_name = draw(st.sampled_from([
        contract.CLASSIFY_METHOD, 'tensorflow/serving/regress',
        'tensorflow/serving/predict']) | st.text(max_size=10))
  request.input.CopyFrom(_model_input(draw, draw(
      st.lists(_examples(), max_size=3))))
  return request


@FUZZ
@given(request=_predict_requests())
def test_grpc_random_predict_requests_get_a_client_answer(stub, request):
  _call(stub.Predict, request)


@FUZZ
@given(data=st.lists(st.binary(max_size=60), min_size=1, max_size=4),
       signature=st.sampled_from([contract.DEFAULT_SIGNATURE,
                                  contract.CLASSIFY_SIGNATURE]))
def test_grpc_inputs_that_are_no_tf_examples_are_invalid_arguments(
    stub, data, signature):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = signature
  key = (contract.EXAMPLES_INPUT if signature == contract.DEFAULT_SIGNATURE
         else contract.CLASSIFY_INPUTS)
  request.inputs[key].CopyFrom(tf.make_tensor_proto(data, tf.string))
  _call(stub.Predict, request)


@FUZZ
@given(request=_example_requests(classification_pb2.ClassificationRequest))
def test_grpc_random_classify_requests_get_a_client_answer(stub, request):
  _call(stub.Classify, request)


@FUZZ
@given(request=_example_requests(regression_pb2.RegressionRequest))
def test_grpc_random_regress_requests_get_a_client_answer(stub, request):
  _call(stub.Regress, request)


@FUZZ
@given(request=_multi_inference_requests())
def test_grpc_random_multi_inference_requests_get_a_client_answer(stub, request):
  _call(stub.MultiInference, request)


def test_the_unparseable_example_answer_is_tf_servings(stub):
  """Bytes that are no tf.Example: INVALID_ARGUMENT with ParseExample's words,
  also when those words quote bytes that are not UTF-8."""
  for data in (b'not an example', b'\n\xff', bytes(np.arange(200, 256, dtype=np.uint8))):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[contract.EXAMPLES_INPUT].CopyFrom(
        tf.make_tensor_proto([data], tf.string))
    error = mnist_requests.rpc_error(stub.Predict, request, timeout=30)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith('Could not parse example input'), (
        error.details())
