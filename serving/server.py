"""The model server: registry + batching + gRPC and REST front ends, in one object.

`ModelServer` is what `mnist-tfx serve` runs and what the tests and the benchmark
start in-process on loopback ports. Port 0 binds a free port (read it back from
`grpc_port` / `rest_port` after start()); None disables that front end.
"""

import dataclasses
import signal
import threading
from typing import Dict, Optional, Sequence

from serving import batching as batching_lib
from serving import grpc_server
from serving import inference as inference_lib
from serving import model_registry
from serving import rest_server

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20


@dataclasses.dataclass
class ServerOptions:
  """Everything but the models; defaults match `mnist-tfx serve`."""

  host: str = '0.0.0.0'
  grpc_port: Optional[int] = 8500
  rest_port: Optional[int] = 8501
  # None: every request is its own model call.
  batching: Optional[batching_lib.BatchingParameters] = dataclasses.field(
      default_factory=batching_lib.BatchingParameters)
  poll_seconds: float = 1.0
  max_load_retries: int = 5
  enable_warmup: bool = True
  max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
  # gRPC request threads: the most requests handled, and batched, at once.
  grpc_max_threads: int = 64
  signature_method_name_check: bool = False


class ModelServer:
  """Serves `models` over gRPC and REST until stop()."""

  def __init__(self, models: Sequence[model_registry.ModelConfig],
               options: Optional[ServerOptions] = None):
    self.options = options or ServerOptions()
    self.registry = model_registry.ModelRegistry(
        models, batching_params=self.options.batching,
        poll_seconds=self.options.poll_seconds,
        max_load_retries=self.options.max_load_retries,
        enable_warmup=self.options.enable_warmup)
    self.inference = inference_lib.Inference(
        self.registry,
        # A legitimate tensor costs at least one byte per element on the wire;
        # more elements can only come from "fill" protos, which are refused.
        max_tensor_elements=self.options.max_message_bytes,
        signature_method_name_check=self.options.signature_method_name_check)
    self._grpc: Optional[grpc_server.GrpcServer] = None
    self._rest: Optional[rest_server.RestServer] = None
    self.grpc_port: Optional[int] = None
    self.rest_port: Optional[int] = None

  def start(self) -> 'ModelServer':
    """Loads the models found on disk, then opens the ports."""
    options = self.options
    self.registry.start()
    try:
      if options.grpc_port is not None:
        self._grpc = grpc_server.GrpcServer(
            self.inference, options.host, options.grpc_port,
            options.max_message_bytes, options.grpc_max_threads)
        self.grpc_port = self._grpc.start()
      if options.rest_port is not None:
        self._rest = rest_server.RestServer(
            self.inference, options.host, options.rest_port,
            options.max_message_bytes)
        self.rest_port = self._rest.start()
    except Exception:
      self.stop()
      raise
    return self

  def stop(self) -> None:
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

  def batch_sizes(self, model_name: str) -> Dict[int, Dict[str, Dict[int, int]]]:
    """{version: {signature: {rows per model call: count}}}, for tests/benchmark."""
    return {version: servable.batch_sizes()
            for version, servable in self.registry.servables(model_name).items()}

  def __enter__(self) -> 'ModelServer':
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()
