"""Clients for programs: send digits to a TF Serving-compatible server.

`GrpcClient` uses the official `tensorflow_serving.apis` stubs and `RestClient` TF
Serving's REST API, so both talk to this project's server (`mnist-tfx serve`) and
to TensorFlow Serving itself. Both take uint8 pixels [N, 784] (see mnist_inputs.py
for reading image files) and return a `Prediction`; the gRPC requests are built
by models/serving_requests.py.

Two signatures of the pushed model can answer (models/serving_contract.py):
  serving_default  serialized tf.Examples (feature `image`, 784 int64 in 0-255)
                   -> `probabilities` [N, 10], `classes` [N]
  predict_images   float32 [N, 784] in [0, 1] -> `scores` [N, 10]
                   (TF Serving's MNIST tutorial contract)

    with client.GrpcClient() as c:  # localhost:8500, the pipeline's model
      prediction = c.predict(images)
      print(prediction.digits, prediction.probabilities, prediction.model_version)
"""

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from models import features
from models import serving_contract as contract
from models import serving_requests
from serving.model_servers import options as options_lib

TIMEOUT_SECONDS = 10.0


@dataclasses.dataclass
class Prediction:
  digits: np.ndarray         # int64 [N]
  probabilities: np.ndarray  # float32 [N, 10]
  model_version: Optional[int]  # None when the server does not say (REST)
  signature_name: str


class RequestError(Exception):
  """The server refused or failed a request; `code` is the gRPC status name."""

  def __init__(self, code: str, message: str, http_status: Optional[int] = None):
    super().__init__(f'{code}: {message}')
    self.code = code
    self.message = message
    self.http_status = http_status


def _check_signature(signature_name: str) -> None:
  if signature_name not in contract.PREDICT_SIGNATURES:
    raise ValueError('signature_name must be one of '
                     f'{contract.PREDICT_SIGNATURES}, got {signature_name!r}')


def default_target(protocol: str) -> str:
  """Where a server started with TF Serving's defaults answers on this machine
  (REST: the port TF Serving's Docker image opens)."""
  if protocol == 'grpc':
    return f'localhost:{options_lib.ServerOptions.port}'
  if protocol == 'rest':
    return f'localhost:{options_lib.DOCKER_REST_API_PORT}'
  raise ValueError(f'protocol must be grpc or rest, got {protocol!r}')


def predict_request(images: np.ndarray, model_name: str = contract.MODEL_NAME,
                    signature_name: str = contract.DEFAULT_SIGNATURE,
                    version: Optional[int] = None,
                    version_label: Optional[str] = None):
  """The PredictRequest for uint8 `images` [N, 784]: pixels in [0, 1] for
  predict_images (TF Serving's MNIST tutorial request), tf.Examples otherwise."""
  _check_signature(signature_name)
  examples = serving_requests.encode_examples(images)
  return serving_requests.predict_request(
      model_name, signature_name,
      serving_requests.digit_inputs(signature_name, examples), version,
      version_label)


class GrpcClient:
  """PredictionService/ModelService over gRPC with the official stubs."""

  def __init__(self, target: str = default_target('grpc'),
               model_name: str = contract.MODEL_NAME,
               timeout: float = TIMEOUT_SECONDS,
               max_message_bytes: int = (
                   options_lib.ServerOptions.max_message_bytes)):
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    self.model_name = model_name
    self.timeout = timeout
    self._grpc = grpc
    self._channel = grpc.insecure_channel(target, options=[
        ('grpc.max_receive_message_length', max_message_bytes),
        ('grpc.max_send_message_length', max_message_bytes)])
    self.prediction_stub = prediction_service_pb2_grpc.PredictionServiceStub(
        self._channel)
    self.model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def _spec(self, spec, signature_name: str = '', version: Optional[int] = None,
            version_label: Optional[str] = None) -> None:
    serving_requests.fill_model_spec(spec, self.model_name, signature_name,
                                     version, version_label)

  def _call(self, method, request):
    try:
      return method(request, timeout=self.timeout)
    except self._grpc.RpcError as e:
      raise RequestError(e.code().name, e.details()) from None

  def predict_request(self, images: np.ndarray,
                      signature_name: str = contract.DEFAULT_SIGNATURE,
                      version: Optional[int] = None,
                      version_label: Optional[str] = None):
    """The PredictRequest for uint8 `images` [N, 784] (for callers that batch)."""
    return predict_request(images, self.model_name, signature_name, version,
                           version_label)

  def predict(self, images: np.ndarray,
              signature_name: str = contract.DEFAULT_SIGNATURE,
              version: Optional[int] = None,
              version_label: Optional[str] = None) -> Prediction:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    request = self.predict_request(images, signature_name, version,
                                   version_label)
    response = self._call(self.prediction_stub.Predict, request)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    if signature_name == contract.IMAGES_SIGNATURE:
      probabilities = outputs[contract.SCORES_OUTPUT]
      digits = probabilities.argmax(axis=1)
    else:
      probabilities = outputs[contract.PROBABILITIES_OUTPUT]
      digits = outputs[contract.CLASSES_OUTPUT]
    return Prediction(digits.astype(np.int64), probabilities.astype(np.float32),
                      response.model_spec.version.value,
                      response.model_spec.signature_name)

  def classify(self, images: np.ndarray,
               signature_name: str = contract.CLASSIFY_SIGNATURE,
               version: Optional[int] = None
               ) -> Tuple[List[List[Tuple[str, float]]], int]:
    """([(label, score)] per image, model version) from the Classify API."""
    request = serving_requests.classification_request(
        self.model_name, signature_name,
        serving_requests.encode_examples(images), version)
    response = self._call(self.prediction_stub.Classify, request)
    results = [[(c.label, c.score) for c in item.classes]
               for item in response.result.classifications]
    return results, response.model_spec.version.value

  def model_status(self, version: Optional[int] = None):
    from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_status_pb2.GetModelStatusRequest()
    self._spec(request.model_spec, version=version)
    return self._call(self.model_stub.GetModelStatus, request)

  def metadata(self, version: Optional[int] = None):
    """GetModelMetadataResponse; unpack metadata['signature_def'] to read it."""
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=['signature_def'])
    self._spec(request.model_spec, version=version)
    return self._call(self.prediction_stub.GetModelMetadata, request)

  def close(self) -> None:
    self._channel.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class RestClient:
  """The same calls over TF Serving's REST API (JSON over HTTP)."""

  def __init__(self, target: str = default_target('rest'),
               model_name: str = contract.MODEL_NAME,
               timeout: float = TIMEOUT_SECONDS):
    self.base_url = target if '://' in target else f'http://{target}'
    self.model_name = model_name
    self.timeout = timeout

  def _path(self, version: Optional[int] = None,
            version_label: Optional[str] = None) -> str:
    path = f'{self.base_url}/v1/models/{self.model_name}'
    if version is not None:
      path += f'/versions/{version}'
    elif version_label:
      path += f'/labels/{version_label}'
    return path

  def _request(self, url: str, document: Optional[Dict[str, Any]] = None):
    data = None if document is None else json.dumps(document).encode('utf-8')
    request = urllib.request.Request(
        url, data=data, headers={'Content-Type': 'application/json'})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        return json.loads(response.read())
    except urllib.error.HTTPError as e:
      body = e.read()
      try:
        message = json.loads(body)['error']
      except (ValueError, KeyError, TypeError):
        message = body.decode('utf-8', 'replace')
      raise RequestError(f'HTTP {e.code}', message, e.code) from None
    except urllib.error.URLError as e:
      raise RequestError('UNAVAILABLE', str(e.reason)) from None

  def predict(self, images: np.ndarray,
              signature_name: str = contract.DEFAULT_SIGNATURE,
              version: Optional[int] = None,
              version_label: Optional[str] = None) -> Prediction:
    _check_signature(signature_name)
    if signature_name == contract.IMAGES_SIGNATURE:
      instances = serving_requests.unit_floats(images).tolist()
    else:
      instances = [{'b64': base64.b64encode(e).decode('ascii')}
                   for e in serving_requests.encode_examples(images)]
    document = self._request(
        self._path(version, version_label) + ':predict',
        {'signature_name': signature_name, 'instances': instances})
    rows = document['predictions']
    if signature_name == contract.IMAGES_SIGNATURE:
      probabilities = np.asarray(rows, dtype=np.float32)
      digits = probabilities.argmax(axis=1)
    else:
      probabilities = np.asarray(
          [r[contract.PROBABILITIES_OUTPUT] for r in rows], np.float32)
      digits = np.asarray([r[contract.CLASSES_OUTPUT] for r in rows])
    return Prediction(digits.astype(np.int64), probabilities, None,
                      signature_name)

  def classify(self, images: np.ndarray,
               signature_name: str = contract.CLASSIFY_SIGNATURE,
               version: Optional[int] = None
               ) -> Tuple[List[List[Tuple[str, float]]], Optional[int]]:
    examples = [{features.IMAGE_KEY: row.tolist()}
                for row in serving_requests.as_pixels(images).astype(np.int64)]
    document = self._request(
        self._path(version) + ':classify',
        {'signature_name': signature_name, 'examples': examples})
    return [[(label, score) for label, score in item]
            for item in document['results']], None

  def model_status(self, version: Optional[int] = None) -> Dict[str, Any]:
    return self._request(self._path(version))

  def metadata(self, version: Optional[int] = None) -> Dict[str, Any]:
    return self._request(self._path(version) + '/metadata')

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def connect(target: str, protocol: str = 'grpc',
            model_name: str = contract.MODEL_NAME,
            timeout: float = TIMEOUT_SECONDS):
  """A GrpcClient or RestClient for `target` (host:port)."""
  if protocol == 'grpc':
    return GrpcClient(target, model_name, timeout)
  if protocol == 'rest':
    return RestClient(target, model_name, timeout)
  raise ValueError(f'protocol must be grpc or rest, got {protocol!r}')
