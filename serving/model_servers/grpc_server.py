"""The gRPC API: TF Serving's PredictionService and ModelService, official stubs.

The services are the generated servicers of `tensorflow_serving.apis`, so the wire
format is TF Serving's by construction and any client built on the official stubs
(including TF Serving's MNIST tutorial client) works unchanged.

grpcio's thread-pool server, not grpc.aio: it costs less CPU per unary call, and
its request threads are what the batch schedulers run batches on (batching.py),
so a request needs no further thread switch. Each in-flight request holds a
thread (--grpc_max_threads), so the pool must be larger than the concurrency meant
to be batched.

Regress and MultiInference behave as TF Serving's (regression_service.cc,
multi_inference_helper.cc; see inference.py). ModelService.HandleReloadConfigRequest
replaces the served models as TF Serving's does (model_service_impl.cc).
"""

import concurrent.futures
import logging
import time
from typing import Optional

import grpc
from grpc_health.v1 import health
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.core import errors
from serving.core import model_registry
from serving.model_servers import config_protos
from serving.model_servers import monitoring
from serving.model_servers import options as options_lib
from serving.servables import inference as inference_lib

log = logging.getLogger(__name__)


def _answer(context: grpc.ServicerContext, call):
  """Returns call(); a ServingError (or anything else) becomes the gRPC status."""
  try:
    return call()
  except errors.ServingError as e:
    error = e
  except Exception as e:  # pylint: disable=broad-except
    log.exception('request failed unexpectedly')
    error = errors.from_exception(e)
  context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, inference: inference_lib.Inference):
    self._inference = inference

  def Predict(self, request, context):
    return _answer(context, lambda: self._inference.predict(request))

  def Classify(self, request, context):
    return _answer(context, lambda: self._inference.classify(request))

  def GetModelMetadata(self, request, context):
    return _answer(context, lambda: self._inference.get_model_metadata(request))

  def Regress(self, request, context):
    return _answer(context, lambda: self._inference.regress(request))

  def MultiInference(self, request, context):
    return _answer(context, lambda: self._inference.multi_inference(request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):

  def __init__(self, inference: inference_lib.Inference):
    self._inference = inference

  def GetModelStatus(self, request, context):
    return _answer(context, lambda: self._inference.get_model_status(request))

  def HandleReloadConfigRequest(self, request, context):
    """Serves the request's ModelConfigList from now on (model_service_impl.cc):
    the status goes in the response and is the call's status too."""
    response = model_management_pb2.ReloadConfigResponse()
    try:
      self._inference.registry.reconfigure(
          model_registry.model_configs(request.config, 'ReloadConfigRequest'))
    except ValueError as e:
      log.error('ReloadConfig failed: %s', e)
      response.status.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
      response.status.error_message = str(e)
      context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
      context.set_details(str(e))
    return response


class _MetricsInterceptor(grpc.ServerInterceptor):
  """Counts each inference call by model and status and times the ones that
  succeed, as TF Serving's prediction_service_impl.cc does (monitoring.py)."""

  _APIS = ('Predict', 'Classify', 'Regress', 'MultiInference')

  def __init__(self, metrics: monitoring.Metrics):
    self._metrics = metrics

  def intercept_service(self, continuation, handler_call_details):
    handler = continuation(handler_call_details)
    api = handler_call_details.method.rsplit('/', 1)[-1]
    if handler is None or handler.unary_unary is None or api not in self._APIS:
      return handler
    call, metrics = handler.unary_unary, self._metrics

    def timed(request, context):
      started = time.monotonic()
      failed = True
      try:
        response = call(request, context)
        failed = False
        return response
      finally:
        code = context.code() or (grpc.StatusCode.UNKNOWN if failed
                                  else grpc.StatusCode.OK)
        spec = (request.tasks[0].model_spec if api == 'MultiInference' and
                request.tasks else getattr(request, 'model_spec', None))
        metrics.record(spec.name if spec else '', api, 'GRPC', code.name,
                       started)

    return grpc.unary_unary_rpc_method_handler(
        timed, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer)


def server_credentials(ssl_config_file: str) -> Optional[grpc.ServerCredentials]:
  """TLS from TF Serving's SSLConfig text file (PEM text inline), or None.

  client_verify requires and verifies client certificates against custom_ca
  (model_servers/server.cc, BuildServerCredentials).
  """
  if not ssl_config_file:
    return None
  config = config_protos.read_text_proto(ssl_config_file, config_protos.SSLConfig)
  return grpc.ssl_server_credentials(
      [(config.server_key.encode(), config.server_cert.encode())],
      root_certificates=config.custom_ca.encode() or None,
      require_client_auth=config.client_verify)


# Services the health service reports SERVING once the models are loaded: the
# server as a whole (''), and TF Serving's two under the short names it uses.
HEALTH_SERVICES = ('', 'ModelService', 'PredictionService')


class GrpcServer:
  """Serves both services on --port and/or --grpc_socket_path from a pool of
  request threads, with TLS, channel arguments and the health service as the
  options say (TF Serving's Server::BuildAndStart)."""

  def __init__(self, inference: inference_lib.Inference,
               options: options_lib.ServerOptions,
               metrics: Optional[monitoring.Metrics] = None):
    self._inference = inference
    self._options = options
    self._metrics = metrics
    self._server: Optional[grpc.Server] = None
    self.health: Optional[health.HealthServicer] = None
    self.port: Optional[int] = None

  def start(self) -> Optional[int]:
    """Binds and starts serving; returns the TCP port (None: socket only)."""
    options = self._options
    channel_options = [
        ('grpc.max_receive_message_length', options.max_message_bytes),
        ('grpc.max_send_message_length', options.max_message_bytes),
        # Fail rather than share the port with another server.
        ('grpc.so_reuseport', 0),
    ] + options.grpc_channel_options()
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=options.grpc_max_threads, thread_name_prefix='grpc')
    interceptors = [_MetricsInterceptor(self._metrics)] if self._metrics else []
    server = grpc.server(pool, options=channel_options, interceptors=interceptors)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(self._inference), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(self._inference), server)
    if options.enable_grpc_healthcheck_service:
      self.health = health.HealthServicer()
      health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
    credentials = server_credentials(options.ssl_config_file)
    addresses = []
    if options.port:
      addresses.append(f'{options.host}:{options.port}')
    if options.grpc_socket_path:
      addresses.append(f'unix:{options.grpc_socket_path}')
    for address in addresses:
      try:
        bound = (server.add_secure_port(address, credentials) if credentials
                 else server.add_insecure_port(address))
      except RuntimeError as e:
        raise OSError(f'cannot bind the gRPC API to {address}: {e}') from e
      if not bound:
        raise OSError(f'cannot bind the gRPC API to {address}')
      if not address.startswith('unix:'):
        self.port = bound
    server.start()
    if self.health:
      for service in HEALTH_SERVICES:
        self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
    self._server = server
    return self.port

  def stop(self, grace: float = 1.0) -> None:
    """Stops taking requests; in-flight ones get `grace` seconds to finish."""
    if self.health:
      self.health.enter_graceful_shutdown()
    if self._server:
      self._server.stop(grace).wait(grace + 5)
      self._server = None
