"""The model server: registry + gRPC and REST front ends, started in TF Serving's order.

`ModelServer` is what `python -m serving` runs (main.py) and what the tests start
in-process. As in TF Serving's Server::BuildAndStart (model_servers/server.cc),
the models are loaded first and the front ends opened after; every setting comes
from one `ServerOptions` (options.py), handed to the lower layers as the plain
values each needs (`model_registry_for`, `Inference`). With
--model_config_file_poll_wait_seconds the config file is re-read while serving and
models are added, removed and re-labelled (server.cc,
PollFilesystemAndReloadConfig).
"""

import logging
import signal
import threading
from typing import List, Optional, Sequence

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2

from serving.core import model_registry
from serving.model_servers import grpc_server
from serving.model_servers import monitoring
from serving.model_servers import options as options_lib
from serving.model_servers import rest_server
from serving.servables import batching as batching_lib
from serving.servables import inference as inference_lib
from serving.servables import loader as loader_lib

ServerOptions = options_lib.ServerOptions

log = logging.getLogger(__name__)


def batching_parameters(
    options: ServerOptions) -> Optional[batching_lib.BatchingParameters]:
  """TF Serving's rule: batching only with --enable_batching; a parameters file
  without it is an error."""
  if not options.enable_batching:
    if options.batching_parameters_file:
      raise ValueError(
          'server_options.batching_parameters_file is set without setting '
          'server_options.enable_batching to true.')
    return None
  if options.batching_parameters_file:
    return batching_lib.load_batching_parameters(options.batching_parameters_file)
  return batching_lib.BatchingParameters()


def apply_thread_settings(options: ServerOptions) -> None:
  """The TensorFlow thread pools, before any model runs (they are fixed then):
  from --tensorflow_session_config_file's ConfigProto if given, else from the
  parallelism flags (TF Serving: the config file wins)."""
  threads = options.thread_settings()
  if options.tensorflow_session_config_file:
    with open(options.tensorflow_session_config_file) as f:
      proto = text_format.Parse(f.read(), config_pb2.ConfigProto())
    threads = {'intra': proto.intra_op_parallelism_threads,
               'inter': proto.inter_op_parallelism_threads}
  log.info('TensorFlow threads: intra-op %s, inter-op %s',
           threads['intra'] or 'auto', threads['inter'] or 'auto')
  try:
    tf.config.threading.set_intra_op_parallelism_threads(threads['intra'])
    tf.config.threading.set_inter_op_parallelism_threads(threads['inter'])
  except RuntimeError as e:  # TensorFlow already ran in this process.
    log.warning("keeping TensorFlow's thread pools: %s", e)


def saved_model_tags(options: ServerOptions) -> List[str]:
  return [t.strip() for t in options.saved_model_tags.split(',') if t.strip()]


def model_registry_for(models: Sequence[model_registry.ModelConfig],
                       options: ServerOptions) -> model_registry.ModelRegistry:
  """The registry and its SavedModel loader, set up by the server's flags."""
  loader = loader_lib.SavedModelLoader(
      tags=saved_model_tags(options),
      batching_params=batching_parameters(options),
      per_model_batching=options.enable_per_model_batching_parameters,
      warmup_iterations=(max(options.num_request_iterations_for_warmup, 1)
                         if options.enable_model_warmup else 0))
  return model_registry.ModelRegistry(
      models, loader,
      poll_seconds=options.file_system_poll_wait_seconds,
      max_load_retries=options.max_num_load_retries,
      retry_seconds=options.load_retry_interval_micros / 1e6,
      load_threads=options.num_load_threads,
      labels_need_versions=(
          not options.allow_version_labels_for_unavailable_models),
      saved_model_tags=loader.tags)


class ModelServer:
  """Serves `models` over gRPC (TCP port and/or UNIX socket) and REST until stop()."""

  def __init__(self, models: Sequence[model_registry.ModelConfig],
               options: Optional[ServerOptions] = None):
    self.options = options or ServerOptions()
    self.registry = model_registry_for(models, self.options)
    self.batching_params = self.registry.loader.batching_params
    self.metrics = monitoring.from_options(self.options,
                                           self.registry.version_states)
    self.inference = inference_lib.Inference(
        self.registry, max_message_bytes=self.options.max_message_bytes,
        outputs_as_tensor_content=(
            self.options.enable_serialization_as_tensor_content),
        signature_method_name_check=(
            self.options.enable_signature_method_name_check))
    self._grpc: Optional[grpc_server.GrpcServer] = None
    self._rest: Optional[rest_server.RestServer] = None
    self._stop = threading.Event()
    self._config_poller: Optional[threading.Thread] = None
    self.grpc_port: Optional[int] = None
    self.rest_port: Optional[int] = None

  def start(self) -> 'ModelServer':
    """Loads the models found on disk, then opens the front ends."""
    options = self.options
    if not options.port and not options.grpc_socket_path:
      raise ValueError('At least one of server_options.grpc_port or '
                       'server_options.grpc_socket_path must be set.')
    self.registry.start()
    try:
      self._grpc = grpc_server.GrpcServer(self.inference, options, self.metrics)
      self.grpc_port = self._grpc.start()
      if options.rest_api_port:
        if options.rest_api_port == options.port:
          log.error('--rest_api_port equals --port (%d): no REST API',
                    options.port)
        else:
          self._rest = rest_server.RestServer(self.inference, options,
                                              self.metrics)
          self.rest_port = self._rest.start()
    except Exception:
      self.stop()
      raise
    if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
      self._config_poller = threading.Thread(
          target=self._poll_config_file, name='model-config-poller', daemon=True)
      self._config_poller.start()
    return self

  def _poll_config_file(self) -> None:
    path = self.options.model_config_file
    while not self._stop.wait(self.options.model_config_file_poll_wait_seconds):
      try:
        self.registry.reconfigure(model_registry.read_model_config_file(path))
      except Exception as e:  # pylint: disable=broad-except
        log.error('PollFilesystemAndReloadConfig failed to ReloadConfig: %s', e)

  def stop(self) -> None:
    self._stop.set()
    if self._config_poller:
      self._config_poller.join(timeout=5)
      self._config_poller = None
    if self._rest:
      self._rest.stop()
      self._rest = None
    if self._grpc:
      self._grpc.stop()
      self._grpc = None
    self.registry.stop()

  def serve_until_signal(self) -> None:
    """Blocks until SIGINT or SIGTERM, then stops cleanly."""
    stopping = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
      previous[sig] = signal.signal(sig, lambda *_: stopping.set())
    try:
      while not stopping.wait(1.0):
        pass
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)
      self.stop()

  def __enter__(self) -> 'ModelServer':
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()
