"""Every setting of the model server, under tensorflow_model_server's flag names.

TF Serving keeps all of its settings in one struct, `Server::Options`
(model_servers/server.h), and its main.cc binds each command-line flag straight into
a field of it. `ServerOptions` is that struct here: one field per flag of
tensorflow_model_server 2.21, named and defaulted as there, followed by the few
settings of this server that TF Serving does not have. The command line is built
from these fields (flags.py) and the server reads nothing else, so each default
has exactly this one home.

Flags that cannot mean anything in a CPU-only Python server (TFLite, GPU, TPU, the
profiler, Google's ALTS, TF Serving's C++ plug-in configs) are accepted, so that
TF Serving command lines run unchanged, and `inapplicable()` names the ones given.
"""

import dataclasses
import os
from typing import Any, Dict, List

from models import serving_contract as contract

_CPUS = os.cpu_count() or 1
# The REST port TF Serving's Docker image opens (tensorflow_model_server itself
# has no REST API unless --rest_api_port is given), where clients look first and
# the Kubernetes manifests (kubeflow/manifests.py) open it too.
DOCKER_REST_API_PORT = 8501


def _flag(default: Any, help: str, applicable: bool = True,  # pylint: disable=redefined-builtin
          tf_serving: bool = True):
  return dataclasses.field(
      default=default,
      metadata={'help': help, 'applicable': applicable, 'tf_serving': tf_serving})


@dataclasses.dataclass
class ServerOptions:
  """tensorflow_model_server's flags (server.h defaults), then this server's own."""

  # --- the front ends --------------------------------------------------------
  port: int = _flag(8500, 'gRPC port (0: no TCP port; then --grpc_socket_path).')
  grpc_socket_path: str = _flag('', 'Also serve gRPC on this UNIX socket.')
  grpc_channel_arguments: str = _flag(
      '', 'gRPC server channel arguments, key=value pairs separated by commas.')
  grpc_max_threads: int = _flag(
      4 * _CPUS, 'gRPC request threads: the most requests in flight, and so the '
      'largest batch concurrent requests can form.')
  enable_grpc_healthcheck_service: bool = _flag(
      False, 'Serve grpc.health.v1.Health (SERVING once the models are loaded).')
  ssl_config_file: str = _flag(
      '', 'Text SSLConfig: TLS for gRPC (server_key, server_cert, custom_ca, '
      'client_verify; PEM text inline).')
  rest_api_port: int = _flag(0, 'REST port (0: no REST API).')
  rest_api_num_threads: int = _flag(4 * _CPUS, 'REST request threads.')
  rest_api_timeout_in_ms: int = _flag(
      30000, 'REST predict/classify/regress calls that take longer answer 504.')
  rest_api_enable_cors_support: bool = _flag(
      False, 'Answer CORS preflight requests and add CORS headers.')
  monitoring_config_file: str = _flag(
      '', 'Text MonitoringConfig: Prometheus metrics on the REST port.')
  enable_serialization_as_tensor_content: bool = _flag(
      False, 'Predict outputs as tensor_content bytes instead of typed values.')

  # --- the models --------------------------------------------------------------
  model_name: str = _flag('default', 'Name of the model served from '
                          '--model_base_path.')
  model_base_path: str = _flag('', 'Folder of numbered version folders.')
  model_config_file: str = _flag(
      '', 'Text ModelServerConfig (several models, version policies, labels); '
      'replaces --model_name/--model_base_path.')
  model_config_file_poll_wait_seconds: int = _flag(
      0, 'Re-read --model_config_file this often (0: only at start).')
  # A float here (TF Serving: int32), so tests can poll in fractions of a second.
  file_system_poll_wait_seconds: float = _flag(
      1, 'Look for new versions this often (0: only at start).')
  allow_version_labels_for_unavailable_models: bool = _flag(
      False, 'Allow labels on versions that are not loaded (yet).')
  max_num_load_retries: int = _flag(5, 'Retries of a version that failed to load.')
  load_retry_interval_micros: int = _flag(
      60 * 1000 * 1000, 'Wait between load retries.')
  num_load_threads: int = _flag(
      0, 'Threads loading the versions of different models side by side (0: one '
      'after another).')
  num_unload_threads: int = _flag(
      0, 'Accepted; unloading is immediate here (a version is dropped once its '
      'last request finishes).')
  saved_model_tags: str = _flag(contract.SERVE_TAG,
                                'MetaGraph tags to load, comma-separated.')
  enable_model_warmup: bool = _flag(
      True, 'Replay assets.extra/tf_serving_warmup_requests before serving.')
  num_request_iterations_for_warmup: int = _flag(
      0, 'Replay each warm-up request this many times (0: once).')
  enable_signature_method_name_check: bool = _flag(
      False, 'Refuse Classify/Regress on signatures of another method.')

  # --- batching and TensorFlow -------------------------------------------------
  enable_batching: bool = _flag(False, 'Batch concurrent requests.')
  batching_parameters_file: str = _flag(
      '', "Text BatchingParameters (only with --enable_batching).")
  enable_per_model_batching_parameters: bool = _flag(
      False, 'Read batching_params.pbtxt from each SavedModel folder.')
  tensorflow_session_parallelism: int = _flag(
      0, 'Threads per op and ops at once (0: TensorFlow picks).')
  tensorflow_intra_op_parallelism: int = _flag(
      0, 'Threads per op (0: TensorFlow picks).')
  tensorflow_inter_op_parallelism: int = _flag(
      0, 'Ops of one call at once (0: TensorFlow picks).')
  tensorflow_session_config_file: str = _flag(
      '', 'Text ConfigProto; its intra/inter-op thread settings are applied '
      '(and replace the parallelism flags).')

  # --- accepted, meaningless here ----------------------------------------------
  prefer_tflite_model: bool = _flag(False, 'TFLite: not served here.',
                                    applicable=False)
  num_tflite_pools: int = _flag(_CPUS, 'TFLite: not served here.',
                                applicable=False)
  num_tflite_interpreters_per_pool: int = _flag(1, 'TFLite: not served here.',
                                                applicable=False)
  per_process_gpu_memory_fraction: float = _flag(0.0, 'GPU: none here.',
                                                 applicable=False)
  xla_gpu_compilation_enabled: bool = _flag(False, 'GPU: none here.',
                                            applicable=False)
  xla_cpu_compilation_enabled: bool = _flag(False, 'XLA JIT: not used here.',
                                            applicable=False)
  skip_initialize_tpu: bool = _flag(False, 'TPU: none here.', applicable=False)
  enable_profiler: bool = _flag(True, 'The profiler service: not offered here.',
                                applicable=False)
  use_alts_credentials: bool = _flag(False, "Google's ALTS: not available here.",
                                     applicable=False)
  platform_config_file: str = _flag('', "TF Serving's C++ platform configs.",
                                    applicable=False)
  thread_pool_factory_config_file: str = _flag(
      '', "TF Serving's C++ thread pool factories.", applicable=False)
  mixed_precision: str = _flag('', 'Grappler mixed precision: not applied here.',
                               applicable=False)
  flush_filesystem_caches: bool = _flag(True, 'C++ file system caches: none here.',
                                        applicable=False)
  remove_unused_fields_from_bundle_metagraph: bool = _flag(
      True, 'C++ memory saving: nothing to do here.', applicable=False)

  # --- this server's own (not tensorflow_model_server flags) ---------------------
  host: str = _flag('0.0.0.0', 'Address to bind; 127.0.0.1 keeps the server '
                    'local.', tf_serving=False)
  model_version_policy: str = _flag(
      'latest', 'latest[:N], all or specific:V1,V2 for --model_base_path (TF '
      'Serving sets this only in the model config file).', tf_serving=False)
  version_label: List[str] = dataclasses.field(
      default_factory=list,
      metadata={'help': 'LABEL=VERSION for --model_base_path; repeatable.',
                'applicable': True, 'tf_serving': False})
  max_message_bytes: int = _flag(64 << 20, 'Largest request accepted (gRPC and '
                                 'REST).', tf_serving=False)

  def inapplicable(self) -> List[str]:
    """The flags given a value other than their default that mean nothing here."""
    defaults = ServerOptions()
    return [f.name for f in dataclasses.fields(self)
            if not f.metadata['applicable']
            and getattr(self, f.name) != getattr(defaults, f.name)]

  def grpc_channel_options(self) -> List[tuple]:
    """--grpc_channel_arguments as grpc options: integers as ints, the rest text
    (TF Serving's BuildAndStart)."""
    options = []
    for pair in filter(None, self.grpc_channel_arguments.split(',')):
      key, sep, value = pair.partition('=')
      if not sep or not key.strip():
        raise ValueError(f'--grpc_channel_arguments: {pair!r} is not key=value')
      value = value.strip()
      try:
        options.append((key.strip(), int(value)))
      except ValueError:
        options.append((key.strip(), value))
    return options

  def thread_settings(self) -> Dict[str, int]:
    """intra/inter op threads from the parallelism flags (0: TensorFlow picks)."""
    if self.tensorflow_session_parallelism:
      both = self.tensorflow_session_parallelism
      return {'intra': both, 'inter': both}
    return {'intra': self.tensorflow_intra_op_parallelism,
            'inter': self.tensorflow_inter_op_parallelism}


def field_help(name: str) -> str:
  return {f.name: f.metadata['help'] for f in dataclasses.fields(ServerOptions)}[name]
