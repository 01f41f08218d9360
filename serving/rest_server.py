"""The REST API on its own port: TF Serving's paths, JSON bodies and status codes.

    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]            model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]/metadata   signatures
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:predict    Predict
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:classify   Classify

The paths are TF Serving's own regular expressions (http_rest_api_util.cc, case
insensitive); every error is {"error": message} with the HTTP status TF Serving
maps the gRPC code to. Requests go through the same Inference object as gRPC, so
they share models, batch queues and checks. The standard library's
ThreadingHTTPServer is enough here (a thread per connection, which also runs the
connection's batches): the REST path is for curl and scripts, the gRPC path is
the fast one.
"""

import http.server
import logging
import re
import threading
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from google.protobuf import json_format
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2

from serving import errors
from serving import inference as inference_lib
from serving import json_codec

_PREDICTION_PATH = re.compile(
    r'/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?'
    r':(classify|regress|predict)', re.IGNORECASE)
_STATUS_PATH = re.compile(
    r'/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?'
    r'(?:/(metadata))?', re.IGNORECASE)

log = logging.getLogger(__name__)

Reply = Tuple[int, Dict[str, Any]]


def _model_spec(name: str, version: Optional[str],
                label: Optional[str]) -> model_pb2.ModelSpec:
  spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
  if version:
    try:
      spec.version.value = int(version)
    except ValueError:
      raise errors.invalid_argument(
          f'Failed to convert version: {version} to numeric.') from None
  if label:
    spec.version_label = urllib.parse.unquote(label)
  return spec


class RestApi:
  """Maps (method, path, body) to (HTTP status, JSON document); no sockets."""

  def __init__(self, inference: inference_lib.Inference):
    self._inference = inference

  def handle(self, method: str, path: str, body: bytes) -> Reply:
    try:
      return 200, self._dispatch(method, urllib.parse.urlsplit(path).path, body)
    except errors.ServingError as e:
      return e.http_status, {'error': e.message}
    except Exception as e:  # pylint: disable=broad-except
      log.exception('REST request %s %s failed unexpectedly', method, path)
      error = errors.from_exception(e)
      return error.http_status, {'error': error.message}

  def _dispatch(self, method: str, path: str, body: bytes) -> Dict[str, Any]:
    if method == 'POST':
      match = _PREDICTION_PATH.fullmatch(path)
      if match:
        name, version, label, verb = match.groups()
        spec = _model_spec(name, version, label)
        verb = verb.lower()
        if verb == 'predict':
          return self._predict(spec, body)
        if verb == 'classify':
          return self._classify(spec, body)
        raise errors.ServingError(errors.Code.UNIMPLEMENTED,
                                  'regress is not implemented by this server')
    elif method == 'GET':
      match = _STATUS_PATH.fullmatch(path)
      if match:
        name, version, label, subresource = match.groups()
        if not name:
          raise errors.invalid_argument('Missing model name in request.')
        spec = _model_spec(name, version, label)
        if subresource:
          return self._metadata(spec)
        return self._status(spec)
    if not path.lower().startswith('/v1/'):
      raise errors.not_found(f'no such API: {method} {path}; see /v1/models/...')
    raise errors.invalid_argument(f'Malformed request: {method} {path}')

  def _predict(self, spec: model_pb2.ModelSpec, body: bytes) -> Dict[str, Any]:
    doc = json_codec.parse(body)
    spec.signature_name = json_codec.signature_name(doc)
    servable = self._inference.registry.resolve(spec)
    signature = servable.signature(spec.signature_name)
    if signature is None:
      raise errors.invalid_argument(
          f'Serving signature name: "{spec.signature_name or "serving_default"}"'
          ' not found in signature def')
    dtypes = {key: tensor.dtype for key, tensor in signature.inputs.items()}
    inputs, layout = json_codec.predict_inputs(doc, dtypes)
    outputs = signature.submit(inputs)
    return json_codec.predict_response(outputs, layout)

  def _classify(self, spec: model_pb2.ModelSpec, body: bytes) -> Dict[str, Any]:
    doc = json_codec.parse(body)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.CopyFrom(spec)
    json_codec.fill_classification_request(doc, request)
    response = self._inference.classify(request)
    return json_codec.classification_response(response.result)

  def _status(self, spec: model_pb2.ModelSpec) -> Dict[str, Any]:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
    response = self._inference.get_model_status(request)
    return json_format.MessageToDict(
        response, always_print_fields_with_no_presence=True)

  def _metadata(self, spec: model_pb2.ModelSpec) -> Dict[str, Any]:
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=spec, metadata_field=[inference_lib.SIGNATURE_DEF_FIELD])
    response = self._inference.get_model_metadata(request)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[inference_lib.SIGNATURE_DEF_FIELD].Unpack(signature_map)
    as_dict = lambda m: json_format.MessageToDict(  # pylint: disable=g-long-lambda
        m, preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True)
    return {'model_spec': as_dict(response.model_spec),
            'metadata': {'signature_def': as_dict(signature_map)}}


class _Handler(http.server.BaseHTTPRequestHandler):
  """One HTTP/1.1 connection; bodies are read whole, within the size limit."""

  protocol_version = 'HTTP/1.1'
  server_version = 'mnist-tfx-model-server'
  timeout = 60  # Seconds of silence before a connection is dropped.

  def do_GET(self):  # pylint: disable=invalid-name
    self._serve('GET')

  def do_POST(self):  # pylint: disable=invalid-name
    self._serve('POST')

  def _serve(self, method: str) -> None:
    server: 'RestServer' = self.server.owner  # type: ignore[attr-defined]
    try:
      length = int(self.headers.get('Content-Length') or 0)
      if length < 0:
        raise ValueError(length)
    except ValueError:
      self.close_connection = True
      self._send(400, {'error': 'invalid Content-Length header'})
      return
    if length > server.max_body_bytes:
      # Refuse without reading the body; the connection cannot be reused.
      self.close_connection = True
      self._send(413, {'error': f'request body of {length} bytes exceeds the '
                                f'limit of {server.max_body_bytes} bytes'})
      return
    body = self.rfile.read(length) if length else b''
    status, document = server.api.handle(method, self.path, body)
    self._send(status, document)

  def _send(self, status: int, document: Dict[str, Any]) -> None:
    payload = json_codec.dumps(document)
    self.send_response(status)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(payload)))
    if self.close_connection:
      self.send_header('Connection', 'close')
    self.end_headers()
    self.wfile.write(payload)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug('%s %s', self.address_string(), format % args)


class _HttpServer(http.server.ThreadingHTTPServer):
  daemon_threads = True
  allow_reuse_address = True
  request_queue_size = 128


class RestServer:
  """The REST API on host:port, served from background threads."""

  def __init__(self, inference: inference_lib.Inference, host: str, port: int,
               max_body_bytes: int):
    self.api = RestApi(inference)
    self.max_body_bytes = max_body_bytes
    self._httpd = _HttpServer((host, port), _Handler)
    self._httpd.owner = self  # type: ignore[attr-defined]
    self.port: int = self._httpd.server_address[1]
    self._thread: Optional[threading.Thread] = None

  def start(self) -> int:
    self._thread = threading.Thread(
        target=self._httpd.serve_forever, kwargs={'poll_interval': 0.2},
        name='rest-server', daemon=True)
    self._thread.start()
    return self.port

  def stop(self) -> None:
    self._httpd.shutdown()
    self._httpd.server_close()
    if self._thread:
      self._thread.join(timeout=5)
