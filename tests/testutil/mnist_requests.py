"""Requests to the pushed model's signatures as TF Serving's clients build them,
and what the model itself answers (the expected answer of a served version)."""

import http.client
import json

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import predict_pb2

from models import serving_contract as contract
from models import serving_requests

MODEL = contract.MODEL_NAME


def images_request(images, **spec):
  """Predict on predict_images: float pixels in [0, 1]; `spec` sets model_spec
  fields (name, version_label, ...)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = contract.IMAGES_SIGNATURE
  for key, value in spec.items():
    setattr(request.model_spec, key, value)
  request.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(serving_requests.unit_floats(images)))
  return request


def examples_request(images, signature=contract.DEFAULT_SIGNATURE):
  """Predict with serialized tf.Examples; signature '' names none (the server
  then calls serving_default)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  if signature:
    request.model_spec.signature_name = signature
  request.inputs[contract.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(
      serving_requests.encode_examples(images), dtype=tf.string))
  return request


def _add_examples(model_input, images) -> None:
  for serialized in serving_requests.encode_examples(images):
    model_input.example_list.examples.add().ParseFromString(serialized)


def classify_request(images, signature=contract.CLASSIFY_SIGNATURE):
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = signature
  _add_examples(request.input, images)
  return request


def multi_inference_request(images):
  """MultiInference with one Classify task on the classify signature."""
  request = inference_pb2.MultiInferenceRequest()
  task = request.tasks.add()
  task.model_spec.name = MODEL
  task.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
  task.method_name = contract.CLASSIFY_METHOD
  _add_examples(request.input, images)
  return request


def rpc_error(call, request, timeout=10) -> grpc.RpcError:
  """The error a gRPC call must fail with."""
  with pytest.raises(grpc.RpcError) as raised:
    call(request, timeout=timeout)
  return raised.value


def rest(server, method, path, body=None, headers=None):
  """(HTTP status, parsed JSON body) of one REST call to `server` (a started
  ModelServer, or the REST port on 127.0.0.1); a dict or list body is sent as
  JSON, bytes as they are."""
  port = getattr(server, 'rest_port', server)
  connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
  try:
    if isinstance(body, (dict, list)):
      body = json.dumps(body)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, json.loads(response.read())
  finally:
    connection.close()


def expected(reference, signature, **inputs):
  """What the SavedModel `reference` answers in-process: {output: array}."""
  outputs = reference.signatures[signature](
      **{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in outputs.items()}
