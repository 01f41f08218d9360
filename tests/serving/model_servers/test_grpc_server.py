"""The model server's gRPC API (serving/model_servers/grpc_server.py), as TF
Serving's clients use it: PredictionService and ModelService through the
official stubs.

One server on loopback (free ports) serves the model under `model_base_path`
(tests/serving/conftest.py); the expected answers come from the same SavedModel
called in-process, so these tests run unchanged against any model with the pushed
model's signatures: to test a trained model, make `model_base_path` return its
base path.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from models import serving_requests
from tests.testutil import model_servers
from tests.testutil import stand_in_models
from tests.testutil.mnist_requests import MODEL
from tests.testutil.mnist_requests import classify_request
from tests.testutil.mnist_requests import examples_request
from tests.testutil.mnist_requests import expected
from tests.testutil.mnist_requests import images_request
from tests.testutil.mnist_requests import rest
from tests.testutil.mnist_requests import rpc_error

Code = grpc.StatusCode


@pytest.fixture(scope='module')
def channel(server):
  with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
    yield channel


@pytest.fixture(scope='module')
def stub(channel):
  return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope='module')
def model_stub(channel):
  return model_service_pb2_grpc.ModelServiceStub(channel)


# --- Predict, Classify, metadata and status ------------------------------------
def test_tensorflow_serving_mnist_tutorial_client_contract(stub, reference,
                                                           images, version):
  # Exactly how tensorflow_serving/example/mnist_client.py asks and reads.
  image = serving_requests.unit_floats(images[:1])[0]
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = 'predict_images'
  request.inputs['images'].CopyFrom(
      tf.make_tensor_proto(image, shape=[1, image.size]))
  result = stub.Predict.future(request, 5.0).result()
  response = np.array(result.outputs['scores'].float_val)
  want = expected(reference, 'predict_images', images=image[None])['scores'][0]
  np.testing.assert_allclose(response, want, rtol=1e-5, atol=1e-6)
  assert np.argmax(response) == np.argmax(want)
  assert result.model_spec.version.value == version


def test_predict_serving_default_with_examples(stub, reference, images, version):
  response = stub.Predict(examples_request(images), timeout=10)
  assert response.model_spec.name == MODEL
  assert response.model_spec.version.value == version
  assert response.model_spec.signature_name == 'serving_default'
  want = expected(reference, 'serving_default', examples=np.array(
      serving_requests.encode_examples(images), dtype=object))
  probabilities = tf.make_ndarray(response.outputs['probabilities'])
  classes = tf.make_ndarray(response.outputs['classes'])
  assert probabilities.shape == (len(images), 10)
  np.testing.assert_allclose(probabilities, want['probabilities'], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(classes, want['classes'])


def test_predict_without_signature_name_uses_serving_default(stub):
  response = stub.Predict(examples_request(np.zeros((1, 784), np.uint8), ''),
                          timeout=10)
  assert response.model_spec.signature_name == 'serving_default'
  assert set(response.outputs) == {'probabilities', 'classes'}


def test_predict_output_filter(stub):
  request = examples_request(np.zeros((2, 784), np.uint8))
  request.output_filter.append('classes')
  response = stub.Predict(request, timeout=10)
  assert list(response.outputs) == ['classes']


def test_predict_selects_version(stub, version):
  request = images_request(np.zeros((1, 784), np.uint8))
  request.model_spec.version.value = version
  assert stub.Predict(request, timeout=10).model_spec.version.value == version


def test_classify(stub, reference, images, version):
  response = stub.Classify(classify_request(images), timeout=10)
  assert response.model_spec.version.value == version
  assert response.model_spec.signature_name == 'classify'
  want = expected(reference, 'classify', inputs=np.array(
      serving_requests.encode_examples(images), dtype=object))
  assert len(response.result.classifications) == len(images)
  for i, classifications in enumerate(response.result.classifications):
    labels = [c.label for c in classifications.classes]
    scores = [c.score for c in classifications.classes]
    assert labels == [label.decode() for label in want['classes'][i]]
    np.testing.assert_allclose(scores, want['scores'][i], rtol=1e-5, atol=1e-6)


def test_classify_merges_context_into_examples(stub, reference, images):
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = 'classify'
  with_context = request.input.example_list_with_context
  with_context.context.ParseFromString(
      serving_requests.encode_examples(images[:1])[0])
  with_context.examples.add()  # Empty: every feature comes from the context.
  with_context.examples.add()
  response = stub.Classify(request, timeout=10)
  want = expected(reference, 'predict_images',
                  images=serving_requests.unit_floats(images[:1]))['scores'][0]
  for classifications in response.result.classifications:
    np.testing.assert_allclose([c.score for c in classifications.classes], want,
                               rtol=1e-5, atol=1e-6)


def test_get_model_metadata(stub, version):
  request = get_model_metadata_pb2.GetModelMetadataRequest(
      metadata_field=['signature_def'])
  request.model_spec.name = MODEL
  response = stub.GetModelMetadata(request, timeout=10)
  assert response.model_spec.name == MODEL
  assert response.model_spec.version.value == version
  signatures = get_model_metadata_pb2.SignatureDefMap()
  assert response.metadata['signature_def'].Unpack(signatures)
  defs = signatures.signature_def
  assert {'serving_default', 'predict_images', 'classify'} <= set(defs)
  assert defs['serving_default'].inputs['examples'].dtype == tf.string
  assert set(defs['serving_default'].outputs) == {'probabilities', 'classes'}
  images_input = defs['predict_images'].inputs['images']
  assert images_input.dtype == tf.float32
  assert [d.size for d in images_input.tensor_shape.dim] == [-1, 784]
  assert defs['classify'].method_name == 'tensorflow/serving/classify'
  assert set(defs['classify'].outputs) == {'classes', 'scores'}


def test_get_model_status(model_stub, version):
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = MODEL
  response = model_stub.GetModelStatus(request, timeout=10)
  [status] = response.model_version_status
  assert status.version == version
  assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
  assert status.status.error_code == 0
  request.model_spec.version.value = version
  assert len(model_stub.GetModelStatus(request, timeout=10)
             .model_version_status) == 1


# --- errors, each with TF Serving's status code ---------------------------------
def _with(request, **changes):
  request = type(request).FromString(request.SerializeToString())
  for key, value in changes.items():
    if key == 'version':
      request.model_spec.version.value = value
    else:
      setattr(request.model_spec, key, value)
  return request


def test_unknown_model_is_not_found(stub, model_stub):
  error = rpc_error(stub.Predict, _with(images_request(np.zeros((1, 784))),
                                        name='nope'))
  assert error.code() == Code.NOT_FOUND
  assert 'nope' in error.details()
  metadata = get_model_metadata_pb2.GetModelMetadataRequest(
      metadata_field=['signature_def'])
  metadata.model_spec.name = 'nope'
  assert rpc_error(stub.GetModelMetadata, metadata).code() == Code.NOT_FOUND
  status = get_model_status_pb2.GetModelStatusRequest()
  status.model_spec.name = 'nope'
  assert rpc_error(model_stub.GetModelStatus, status).code() == Code.NOT_FOUND


def test_unknown_version_is_not_found(stub, model_stub, version):
  error = rpc_error(stub.Predict, _with(images_request(np.zeros((1, 784))),
                                        version=version + 100))
  assert error.code() == Code.NOT_FOUND
  assert str(version + 100) in error.details()
  status = get_model_status_pb2.GetModelStatusRequest()
  status.model_spec.name = MODEL
  status.model_spec.version.value = version + 100
  assert rpc_error(model_stub.GetModelStatus, status).code() == Code.NOT_FOUND


def test_unknown_version_label_is_invalid_argument(stub):
  error = rpc_error(stub.Predict, _with(images_request(np.zeros((1, 784))),
                                        version_label='stable'))
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'stable' in error.details()


def test_unknown_signature(stub):
  # TF Serving answers Predict with FAILED_PRECONDITION (predict_util.cc) and
  # Classify with INVALID_ARGUMENT (classifier.cc); both name the signature.
  error = rpc_error(stub.Predict, _with(images_request(np.zeros((1, 784))),
                                        signature_name='nope'))
  assert error.code() == Code.FAILED_PRECONDITION
  assert '"nope" not found' in error.details()
  error = rpc_error(stub.Classify,
                    classify_request(np.zeros((1, 784)), signature='nope'))
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'nope' in error.details()


def test_wrong_input_name_says_which_is_expected(stub):
  request = images_request(np.zeros((1, 784)))
  request.inputs['pixels'].CopyFrom(request.inputs.pop('images'))
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'Missing but required: {images}' in error.details()
  assert 'Sent extra: {pixels}' in error.details()


def test_wrong_dtype_says_which_is_expected(stub):
  request = images_request(np.zeros((1, 784)))
  request.inputs['images'].CopyFrom(
      tf.make_tensor_proto(np.zeros((1, 784), np.float64)))
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'DT_DOUBLE' in error.details() and 'DT_FLOAT' in error.details()


def test_wrong_shape_says_which_is_expected(stub):
  # TF Serving runs any shape the graph accepts ([1,28,28] reshapes fine); one
  # it cannot run fails with the declared shape named.
  request = images_request(np.zeros((1, 784)))
  request.inputs['images'].CopyFrom(
      tf.make_tensor_proto(np.zeros((1, 783), np.float32)))
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert '[1,783]' in error.details() and '[-1,784]' in error.details()


def test_unparsable_example_is_invalid_argument(stub):
  request = examples_request(np.zeros((1, 784), np.uint8))
  request.inputs['examples'].CopyFrom(
      tf.make_tensor_proto([b'not a tf.Example'], dtype=tf.string))
  assert rpc_error(stub.Predict, request).code() == Code.INVALID_ARGUMENT


def test_example_without_image_feature_is_invalid_argument(stub):
  request = examples_request(np.zeros((1, 784), np.uint8))
  request.inputs['examples'].CopyFrom(tf.make_tensor_proto(
      [example_pb2.Example().SerializeToString()], dtype=tf.string))
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'image' in error.details()


def test_classify_needs_a_classification_signature(stub):
  error = rpc_error(stub.Classify, classify_request(
      np.zeros((1, 784)), signature='serving_default'))
  assert error.code() == Code.INVALID_ARGUMENT
  assert "'inputs'" in error.details()


def test_classify_without_examples_is_invalid_argument(stub):
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = 'classify'
  error = rpc_error(stub.Classify, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'Input is empty' in error.details()


def test_bad_output_filter_is_invalid_argument(stub):
  request = examples_request(np.zeros((1, 784), np.uint8))
  request.output_filter.append('logits')
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'logits' in error.details() and 'probabilities' in error.details()


def test_metadata_needs_signature_def_field(stub):
  request = get_model_metadata_pb2.GetModelMetadataRequest()
  request.model_spec.name = MODEL
  assert rpc_error(stub.GetModelMetadata, request).code() == (
      Code.INVALID_ARGUMENT)
  request.metadata_field.append('graph')
  assert rpc_error(stub.GetModelMetadata, request).code() == (
      Code.INVALID_ARGUMENT)


def test_regress_and_multi_inference_check_their_signatures(stub):
  """The MNIST model has no regression signature: TF Serving's answers."""
  regress = regression_pb2.RegressionRequest()
  regress.model_spec.name = MODEL
  regress.model_spec.signature_name = 'classify'
  error = rpc_error(stub.Regress, regress)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'Expected one output Tensor.' in error.details()
  multi = inference_pb2.MultiInferenceRequest()
  error = rpc_error(stub.MultiInference, multi)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'ModelSpec has no name specified.' in error.details()


# --- batching -------------------------------------------------------------------
def test_concurrent_single_image_requests_are_batched(server, stub, reference):
  images = stand_in_models.random_images(24, seed=7)
  with model_servers.model_calls(server, MODEL) as calls:
    futures = [stub.Predict.future(images_request(images[i:i + 1]), 10)
               for i in range(len(images))]
    scores = np.stack([np.array(f.result().outputs['scores'].float_val)
                       for f in futures])
  want = expected(reference, 'predict_images',
                  images=serving_requests.unit_floats(images))['scores']
  # Each request got its own rows back, not a neighbour's.
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
  sizes = calls['predict_images']
  assert sum(n * c for n, c in sizes.items()) == len(images)
  assert 1 < max(sizes) <= 16, sizes


def test_bad_request_in_a_batch_fails_alone(stub):
  good = examples_request(np.zeros((1, 784), np.uint8))
  bad = examples_request(np.zeros((1, 784), np.uint8))
  bad.inputs['examples'].CopyFrom(
      tf.make_tensor_proto([b'garbage'], dtype=tf.string))
  futures = [stub.Predict.future(bad if i == 3 else good, 10) for i in range(8)]
  for i, future in enumerate(futures):
    if i == 3:
      assert future.exception().code() == Code.INVALID_ARGUMENT
    else:
      assert future.result().outputs['probabilities'].tensor_shape.dim[0].size == 1


# --- malformed and oversized requests ---------------------------------------------
def test_garbage_bytes_do_not_take_the_server_down(channel, stub):
  raw = channel.unary_unary('/tensorflow.serving.PredictionService/Predict',
                            request_serializer=None, response_deserializer=None)
  with pytest.raises(grpc.RpcError):
    raw(b'\xff\x00 definitely not a PredictRequest \xff' * 10, timeout=10)
  stub.Predict(images_request(np.zeros((1, 784))), timeout=10)


def test_tensor_claiming_a_huge_shape_is_refused(stub):
  request = images_request(np.zeros((1, 784)))
  proto = request.inputs['images']
  proto.Clear()
  proto.dtype = tf.float32.as_datatype_enum
  proto.tensor_shape.dim.add(size=1 << 40)
  proto.tensor_shape.dim.add(size=784)
  proto.float_val.append(0.5)  # TensorFlow would fill 2^40 * 784 floats.
  error = rpc_error(stub.Predict, request)
  assert error.code() == Code.INVALID_ARGUMENT
  assert 'elements' in error.details()
  stub.Predict(images_request(np.zeros((1, 784))), timeout=10)


def test_tensor_content_of_wrong_length_is_refused(stub):
  request = images_request(np.zeros((2, 784)))
  content = request.inputs['images'].tensor_content
  request.inputs['images'].tensor_content = content[:-4]
  assert rpc_error(stub.Predict, request).code() == Code.INVALID_ARGUMENT


def test_oversized_requests_are_refused_and_the_server_lives(model_base_path):
  server = model_servers.start_server(
      (MODEL, model_base_path), file_system_poll_wait_seconds=0,
      max_message_bytes=1 << 20)
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      too_big = images_request(np.zeros((400, 784), np.uint8))  # 1.25 MB.
      assert rpc_error(stub.Predict, too_big).code() == Code.RESOURCE_EXHAUSTED
      assert stub.Predict(images_request(np.zeros((100, 784))), timeout=10)
    status, body = rest(server, 'POST', '/v1/models/mnist:predict',
                        body=b' ' * 100,
                        headers={'Content-Length': str(10 << 20)})
    assert status == 413 and 'exceeds' in body['error']
    status, _ = rest(server, 'GET', '/v1/models/mnist')
    assert status == 200
  finally:
    server.stop()

