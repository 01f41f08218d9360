"""The REST API on its own port: TF Serving's paths, JSON bodies and status codes.

    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]            model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]/metadata   signatures
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:predict    Predict
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:classify   Classify
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:regress    Regress

The paths are TF Serving's own regular expressions (http_rest_api_util.cc, case
insensitive); every error is {"error": message} with the HTTP status TF Serving
maps the gRPC code to. Requests go through the same Inference object as gRPC, so
they share models, batch queues and checks. The standard library's HTTP server
with a fixed pool of --rest_api_num_threads connection threads is enough here: the
REST path is for curl and scripts, the gRPC path is the fast one.

As TF Serving's http_server.cc: a predict/classify/regress call that outlives
--rest_api_timeout_in_ms answers 504 (the model call itself cannot be cancelled
from Python and finishes in the background); --rest_api_enable_cors_support adds
CORS headers and answers preflight requests; with a Prometheus MonitoringConfig the
metrics are served at its path; every request is counted by model and status.
Successful predict/classify/regress calls are request-logged as their gRPC
counterparts are (serving/core/request_logging.py).
"""

import concurrent.futures
import http.server
import logging
import re
import threading
import time
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from google.protobuf import json_format
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import regression_pb2

from serving.core import errors
from serving.model_servers import json_codec
from serving.model_servers import monitoring
from serving.model_servers import options as options_lib
from serving.servables import inference as inference_lib

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

  def __init__(self, inference: inference_lib.Inference,
               options: options_lib.ServerOptions,
               metrics: Optional[monitoring.Metrics] = None):
    self._inference = inference
    timeout_ms = options.rest_api_timeout_in_ms
    self._timeout = timeout_ms / 1000 if timeout_ms > 0 else None
    self._metrics = metrics
    # Model calls run here when a timeout applies, so the connection thread can
    # stop waiting for them.
    self._calls = concurrent.futures.ThreadPoolExecutor(
        thread_name_prefix='rest-call') if self._timeout else None

  def handle(self, method: str, path: str, body: bytes) -> Reply:
    path = urllib.parse.urlsplit(path).path
    started = time.monotonic()
    match = _PREDICTION_PATH.fullmatch(path) if method == 'POST' else None
    try:
      if match and self._calls:
        future = self._calls.submit(self._dispatch, method, path, body)
        try:
          reply = 200, future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
          raise errors.ServingError(
              errors.Code.DEADLINE_EXCEEDED,
              f'Timed out after {self._timeout * 1000:.0f} ms '
              '(--rest_api_timeout_in_ms)') from None
      else:
        reply = 200, self._dispatch(method, path, body)
      code = errors.Code.OK
    except errors.ServingError as e:
      reply, code = (e.http_status, {'error': e.message}), e.code
    except Exception as e:  # pylint: disable=broad-except
      log.exception('REST request %s %s failed unexpectedly', method, path)
      error = errors.from_exception(e)
      reply, code = (error.http_status, {'error': error.message}), error.code
    if self._metrics and match:
      self._metrics.record(urllib.parse.unquote(match.group(1)),
                           match.group(4).lower(), 'REST', code.name, started)
    return reply

  def close(self) -> None:
    if self._calls:
      self._calls.shutdown(wait=False, cancel_futures=True)

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
        return self._regress(spec, body)
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
    outputs = self._inference.predict_arrays(
        spec, lambda dtypes: json_codec.predict_inputs(doc, dtypes))
    return json_codec.predict_response(outputs, json_codec.predict_layout(doc))

  def _classify(self, spec: model_pb2.ModelSpec, body: bytes) -> Dict[str, Any]:
    return self._examples_call(spec, body, classification_pb2.ClassificationRequest,
                               self._inference.classify,
                               json_codec.classification_response)

  def _regress(self, spec: model_pb2.ModelSpec, body: bytes) -> Dict[str, Any]:
    # http_rest_api_handler.cc ProcessRegressRequest: {"results": [v, ...]}.
    return self._examples_call(spec, body, regression_pb2.RegressionRequest,
                               self._inference.regress,
                               json_codec.regression_response)

  @staticmethod
  def _examples_call(spec, body, request_class, call, render) -> Dict[str, Any]:
    """Classify and Regress: the same JSON request ("examples", "context"), the
    same gRPC request fields, one call, the result rendered as TF Serving's."""
    request = request_class()
    request.model_spec.CopyFrom(spec)
    json_codec.fill_classification_request(json_codec.parse(body), request)
    return render(call(request).result)

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
    server: 'RestServer' = self.server.owner  # type: ignore[attr-defined]
    metrics = server.metrics
    if metrics and urllib.parse.urlsplit(self.path).path == metrics.path:
      self._send_bytes(200, metrics.render(), monitoring.CONTENT_TYPE)
      return
    self._serve('GET')

  def do_POST(self):  # pylint: disable=invalid-name
    self._serve('POST')

  def __getattr__(self, name: str):
    # Any other method (PUT, DELETE, a made-up one) goes where TF Serving's
    # handler sends a method and path it does not serve: "Malformed request",
    # 400. The standard library would answer 501, a server error.
    if name.startswith('do_'):
      method = name[3:]
      if method == 'HEAD':  # The answer carries a body; the connection ends.
        self.close_connection = True
      return lambda: self._serve(method)
    raise AttributeError(name)

  def do_OPTIONS(self):  # pylint: disable=invalid-name
    """A CORS preflight request (only with --rest_api_enable_cors_support)."""
    server: 'RestServer' = self.server.owner  # type: ignore[attr-defined]
    if not server.cors:
      self._send(405, {'error': 'OPTIONS needs --rest_api_enable_cors_support'})
      return
    origin = self.headers.get('Origin', '')
    if not origin.startswith(('http://', 'https://')):
      self._send(400, {'error': 'CORS preflight request without an http(s) '
                                'Origin header'})
      return
    self._send_bytes(200, b'', 'text/plain')

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
    self._send_bytes(status, json_codec.dumps(document), 'application/json')

  def _send_bytes(self, status: int, payload: bytes, content_type: str) -> None:
    server: 'RestServer' = self.server.owner  # type: ignore[attr-defined]
    self.send_response(status)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(payload)))
    if server.cors:  # TF Serving's AddCORSHeaders
      self.send_header('Access-Control-Allow-Origin', '*')
      self.send_header('Access-Control-Allow-Methods', 'POST, GET')
      self.send_header('Access-Control-Allow-Headers', 'Content-Type')
    if self.close_connection:
      self.send_header('Connection', 'close')
    self.end_headers()
    self.wfile.write(payload)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug('%s %s', self.address_string(), format % args)


class _HttpServer(http.server.HTTPServer):
  """An HTTP server whose connections are served by a fixed pool of threads."""

  allow_reuse_address = True
  request_queue_size = 128

  def __init__(self, address, handler, threads: int):
    super().__init__(address, handler)
    self._pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(threads, 1), thread_name_prefix='rest')

  def process_request(self, request, client_address):
    self._pool.submit(self._serve_connection, request, client_address)

  def _serve_connection(self, request, client_address):
    try:
      self.finish_request(request, client_address)
    except Exception:  # pylint: disable=broad-except
      self.handle_error(request, client_address)
    finally:
      self.shutdown_request(request)

  def server_close(self):
    super().server_close()
    self._pool.shutdown(wait=False, cancel_futures=True)


class RestServer:
  """The REST API on --rest_api_port, served from background threads."""

  def __init__(self, inference: inference_lib.Inference,
               options: options_lib.ServerOptions,
               metrics: Optional[monitoring.Metrics] = None):
    self.api = RestApi(inference, options, metrics)
    self.max_body_bytes = options.max_message_bytes
    self.metrics = metrics
    self.cors = options.rest_api_enable_cors_support
    self._httpd = _HttpServer((options.host, options.rest_api_port), _Handler,
                              options.rest_api_num_threads)
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
    self.api.close()
    if self._thread:
      self._thread.join(timeout=5)
