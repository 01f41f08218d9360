"""InfraValidator: a candidate must load and answer in a model server before the
Pusher may push it.

TFX's InfraValidator starts tensorflow/serving in Docker or in a Kubernetes pod; the
Kubeflow pipeline runs it as it is (`InfraValidator` below only lets
KubeflowV2DagRunner compile it). On this machine there is neither, so the local
pipeline runs `LocalInfraValidator`: the same spec, inputs, `blessing` output and
InfraBlessing contract (which TFX's Pusher and components/atomic_pusher.py check),
with an executor that

1. starts `python -m serving` (TF Serving's flags) on the candidate as a
   separate process on 127.0.0.1 and a free port
   (serving/model_servers/process.py), the candidate as version 1 of a
   temporary model base path;
2. waits until the server reports the version AVAILABLE (the load, including
   the replay of the model's warm-up requests, succeeded) or the load failed, the
   process exited, or `max_loading_time_seconds` passed;
3. sends requests built from `num_examples` examples of `split_name`, one example
   per request, to every signature (or to `signature_names` when the RequestSpec
   names some) through the official tensorflow_serving.apis stubs: Predict with
   serialized tf.Examples or with pixels, Classify, Regress, as each signature's
   method and inputs require (models/serving_requests.py builds them);
4. compares every answer with the same signature called in-process
   (tf.saved_model.load of the same directory) within a tolerance;
5. stops the server (SIGTERM, SIGKILL after a grace period) and writes the
   InfraBlessing: TFX's INFRA_BLESSED / INFRA_NOT_BLESSED file and `blessed`
   property, plus `reason` (why not), `signatures` and `requests` (what was
   checked). The server's output is kept as `model_server.log` in the artifact.

A model that does not load, or loads but fails or answers differently, is not
blessed, and the reason is recorded; the Pusher then does not push it. Only a server
that died before it answered at all is retried (`num_tries`), with a new port.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tfx import types
from tfx.components.infra_validator import executor as tfx_executor
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_driver
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import infra_validator_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import path_utils
from tfx.utils import proto_utils

from models import features
from models import serving_contract as contract
from models import serving_requests
from serving.model_servers import options as options_lib
from serving.model_servers import process as process_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# TFX's InfraBlessing contract (tfx/components/infra_validator/executor.py): the
# Pusher reads the `blessed` custom property.
BLESSED_KEY = 'blessed'
BLESSED_FILE = 'INFRA_BLESSED'
NOT_BLESSED_FILE = 'INFRA_NOT_BLESSED'
# What this executor adds to the artifact.
REASON_KEY = 'reason'
SIGNATURES_KEY = 'signatures'
REQUESTS_KEY = 'requests'
SERVER_LOG_FILE = 'model_server.log'

# TFX's defaults for what the specs leave unset.
DEFAULT_NUM_TRIES = 5
DEFAULT_MAX_LOADING_TIME_SECONDS = 300
DEFAULT_NUM_EXAMPLES = 1
VERSION = 1  # the candidate's version number in the temporary base path

# A served answer matches the in-process one within this (float outputs).
RTOL = 1e-4
ATOL = 1e-5
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
RPC_TIMEOUT_SECONDS = 60.0
MAX_MESSAGE_BYTES = options_lib.ServerOptions.max_message_bytes
# The TF Serving API that calls a signature of each method.
_APIS = {contract.PREDICT_METHOD: 'Predict',
         contract.CLASSIFY_METHOD: 'Classify',
         contract.REGRESS_METHOD: 'Regress'}


@dataclasses.dataclass
class Result:
  blessed: bool
  reason: str = ''
  signatures: List[str] = dataclasses.field(default_factory=list)
  requests: int = 0


class ServerDied(Exception):
  """The server process exited before it answered any request."""


class _NotBlessed(Exception):
  """The model failed a check; the message is the reason."""


class _RequestFailed(Exception):
  """The server answered a request with an error: 'CODE: details'."""


# --- the model: requests and in-process answers --------------------------------


def _meta_graph(model_dir: str, tags: Sequence[str]):
  from tensorflow.python.saved_model import loader_impl  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  try:
    saved_model = loader_impl.parse_saved_model(model_dir)
  except (OSError, ValueError) as e:
    raise _NotBlessed(f'not a readable SavedModel: {_first_line(e)}') from e
  for meta_graph in saved_model.meta_graphs:
    if set(meta_graph.meta_info_def.tags) == set(tags):
      return meta_graph
  raise _NotBlessed(f'the SavedModel has no MetaGraph tagged {sorted(tags)}')


def _input_value(signature: str, key: str, tensor_info, record: bytes):
  """The value of one input for one example: the serialized tf.Example for a
  string input, the pixels in [0, 1] for a float [N, 784] input."""
  dims = [d.size for d in tensor_info.tensor_shape.dim]
  if tensor_info.dtype == tf.string.as_datatype_enum and len(dims) == 1:
    return np.asarray([record], dtype=object)
  if (tensor_info.dtype == tf.float32.as_datatype_enum and len(dims) == 2 and
      dims[1] == features.IMAGE_PIXELS):
    try:
      return serving_requests.pixels_of_examples([record])
    except ValueError as e:
      raise _NotBlessed(f'an eval example does not fit: {e}') from None
  raise _NotBlessed(
      f'no request can be built for input {key!r} of signature {signature!r} '
      f'({tf.dtypes.as_dtype(tensor_info.dtype).name} {dims}): only serialized '
      f'tf.Examples [N] and float pixels [N, {features.IMAGE_PIXELS}]')


@dataclasses.dataclass
class _Call:
  """One request to one signature, and what the model answers in-process (or
  how it fails there)."""
  signature: str
  method: str
  inputs: Dict[str, np.ndarray]
  expected: Dict[str, np.ndarray]
  error: str = ''


def prepare_calls(model_dir: str, records: Sequence[bytes],
                  signature_names: Sequence[str] = (),
                  tags: Sequence[str] = (contract.SERVE_TAG,)) -> List[_Call]:
  """The requests to send, one per (signature, example), with the answers of the
  model loaded in this process. Raises _NotBlessed when no request can be built
  or the model does not load; a call that fails in-process keeps its error."""
  meta_graph = _meta_graph(model_dir, tags)
  defs = {name: d for name, d in meta_graph.signature_def.items()
          if name != contract.INIT_OP_SIGNATURE}
  names = list(signature_names) or sorted(defs)
  missing = [n for n in names if n not in defs]
  if missing:
    raise _NotBlessed(f'the model has no signature {missing[0]!r} '
                      f'(it has {sorted(defs)})')
  if not names:
    raise _NotBlessed('the model has no serving signature')
  calls = []
  for name in names:
    signature_def = defs[name]
    method = signature_def.method_name
    if method not in _APIS:
      raise _NotBlessed(f'signature {name!r} has method {method!r}, which no '
                        'TF Serving API calls')
    for record in records:
      if method == contract.PREDICT_METHOD:
        inputs = {key: _input_value(name, key, info, record)
                  for key, info in signature_def.inputs.items()}
      else:  # Classify and Regress take tf.Examples under their one input.
        if len(signature_def.inputs) != 1:
          raise _NotBlessed(f'{method} signature {name!r} must have one input, '
                            f'it has {sorted(signature_def.inputs)}')
        (key,) = signature_def.inputs
        inputs = {key: np.asarray([record], dtype=object)}
      calls.append(_Call(name, method, inputs, {}))
  try:
    loaded = tf.saved_model.load(model_dir, tags=list(tags))
  except Exception as e:  # pylint: disable=broad-except
    raise _NotBlessed(f'the model does not load in TensorFlow: {_first_line(e)}'
                      ) from e
  for call in calls:
    function = loaded.signatures[call.signature]
    try:
      outputs = function(**{k: tf.constant(v) for k, v in call.inputs.items()})
      call.expected = {k: v.numpy() for k, v in outputs.items()}
    except Exception as e:  # pylint: disable=broad-except
      call.error = _first_line(e)
  return calls


# --- the model server process ---------------------------------------------------


def _server(model_name: str, model_base_path: str,
            log_path: str) -> process_lib.ServerProcess:
  """`python -m serving` on 127.0.0.1 and a free port for one model, its output
  in `log_path`; it dies with this process, so a killed run leaves no server."""
  return process_lib.ServerProcess(
      f'--model_name={model_name}', f'--model_base_path={model_base_path}',
      # Load once, fail once: a failed load is the verdict, not a retry later.
      '--file_system_poll_wait_seconds=0', '--max_num_load_retries=0',
      rest_api_port=0, log_path=log_path, cwd=REPO_ROOT, die_with_parent=True)


def _rpc(method, request):
  """Calls a stub method; a gRPC error becomes _RequestFailed."""
  try:
    return method(request, timeout=RPC_TIMEOUT_SECONDS)
  except grpc.RpcError as e:
    raise _RequestFailed(f'{e.code().name}: {e.details()}') from None


def _wait_until_available(server: process_lib.ServerProcess, model_stub,
                          model_name: str, deadline: float) -> None:
  """Returns once the model's version is AVAILABLE; raises _NotBlessed when its
  load failed or the deadline passed, ServerDied when the process exited before
  it answered."""
  try:
    server.wait(max(deadline - time.monotonic(), 0))
  except process_lib.ServerExited as e:
    raise ServerDied(str(e)) from None
  except process_lib.ServerNotReady:
    raise _NotBlessed('the model was not available after the '
                      'max_loading_time_seconds of the ValidationSpec; the '
                      f'server says: {server.log_tail()}') from None
  states = get_model_status_pb2.ModelVersionStatus.State
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = model_name
  while True:
    code = server.exit_code()
    if code is not None:
      raise _NotBlessed(f'the model server exited (status {code}) before the '
                        f'model was available: {server.log_tail()}')
    try:
      response = _rpc(model_stub.GetModelStatus, request)
      statuses = list(response.model_version_status)
      if statuses and all(s.state == states.AVAILABLE for s in statuses):
        return
      for status in statuses:
        if status.state == states.END:
          error = status.status.error_message or 'no error message'
          raise _NotBlessed(f'the model server could not load the model: {error}')
    except _RequestFailed as e:
      if not str(e).startswith(('UNAVAILABLE', 'NOT_FOUND')):
        raise _NotBlessed(f'GetModelStatus failed: {e}') from None
    if time.monotonic() > deadline:
      raise _NotBlessed('the model was not available after the '
                        'max_loading_time_seconds of the ValidationSpec; the '
                        f'server says: {server.log_tail()}')
    time.sleep(POLL_SECONDS)


# --- requests and answers -------------------------------------------------------


def _send(stub, model_name: str, call: _Call) -> Dict[str, np.ndarray]:
  """Sends `call` through the official stubs; returns the answer in the shape of
  the signature's outputs."""
  if call.method == contract.PREDICT_METHOD:
    response = _rpc(stub.Predict, serving_requests.predict_request(
        model_name, call.signature, call.inputs))
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
  records = list(next(iter(call.inputs.values())))
  if call.method == contract.CLASSIFY_METHOD:
    response = _rpc(stub.Classify, serving_requests.classification_request(
        model_name, call.signature, records))
    classes = [list(c.classes) for c in response.result.classifications]
    return {contract.CLASSIFY_CLASSES: np.asarray(
                [[c.label.encode() for c in row] for row in classes],
                dtype=object),
            contract.CLASSIFY_SCORES: np.asarray(
                [[c.score for c in row] for row in classes], np.float32)}
  response = _rpc(stub.Regress, serving_requests.regression_request(
      model_name, call.signature, records))
  return {contract.REGRESS_OUTPUTS: np.asarray(
      [r.value for r in response.result.regressions], np.float32)}


def _expected_for_api(call: _Call) -> Dict[str, np.ndarray]:
  """What the API returns of the in-process outputs: all of them for Predict;
  for Classify the `classes` (labels) and `scores` it reports; for Regress the
  `outputs` as one value per example."""
  if call.method == contract.PREDICT_METHOD:
    return call.expected
  if call.method == contract.CLASSIFY_METHOD:
    return {key: call.expected[key].reshape(1, -1)
            for key in (contract.CLASSIFY_SCORES, contract.CLASSIFY_CLASSES)
            if key in call.expected}
  return {contract.REGRESS_OUTPUTS:
          call.expected[contract.REGRESS_OUTPUTS].reshape(-1)}


def _compare(call: _Call, served: Dict[str, np.ndarray]) -> Optional[str]:
  """None when `served` matches the in-process answer; else what differs."""
  expected = _expected_for_api(call)
  if call.method == contract.CLASSIFY_METHOD:
    served = {k: v for k, v in served.items() if k in expected and v.size}
  if sorted(served) != sorted(expected):
    return f'outputs {sorted(served)}, the model has {sorted(expected)}'
  for key, want in expected.items():
    got = served[key]
    if got.shape != want.shape:
      return f'output {key!r} has shape {list(got.shape)}, not {list(want.shape)}'
    if np.issubdtype(want.dtype, np.floating):
      if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(got.astype(np.float64) - want)))
        return (f'output {key!r} differs from the in-process answer by up to '
                f'{worst:.3g} (tolerance {RTOL:g} relative, {ATOL:g} absolute)')
    elif not np.array_equal(got, want):
      return f'output {key!r} is {got.tolist()}, the model answers {want.tolist()}'
  return None


# --- the whole check --------------------------------------------------------------


def _stage_model(model_dir: str, base: str, model_name: str) -> str:
  """A TF Serving model base path under `base` holding `model_dir` as version 1
  (a symlink; a copy for a remote URI). Returns the base path."""
  model_base_path = os.path.join(base, model_name)
  os.makedirs(model_base_path)
  version_dir = os.path.join(model_base_path, str(VERSION))
  if '://' in model_dir:
    io_utils.copy_dir(model_dir, version_dir)
  else:
    os.symlink(os.path.abspath(model_dir), version_dir)
  return model_base_path


def _validate_once(model_dir: str, model_base_path: str, model_name: str,
                   records: Sequence[bytes], signature_names: Sequence[str],
                   tags: Sequence[str], deadline_seconds: float,
                   log_path: str) -> Result:
  server = _server(model_name, model_base_path, log_path).launch()
  logging.info('InfraValidator: started model server (pid %d): %s', server.pid,
               ' '.join(server.command))
  try:
    deadline = time.monotonic() + deadline_seconds
    # The server takes seconds to start: meanwhile the model answers in-process.
    prepare_error = None
    calls: List[_Call] = []
    try:
      calls = prepare_calls(model_dir, records, signature_names, tags)
    except _NotBlessed as e:
      prepare_error = str(e)
    with grpc.insecure_channel(server.grpc_target, options=[
        ('grpc.max_receive_message_length', MAX_MESSAGE_BYTES),
        ('grpc.max_send_message_length', MAX_MESSAGE_BYTES)]) as channel:
      _wait_until_available(
          server, model_service_pb2_grpc.ModelServiceStub(channel), model_name,
          deadline)
      if prepare_error:
        raise _NotBlessed(prepare_error)
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      for call in calls:
        try:
          served = _send(stub, model_name, call)
        except _RequestFailed as e:
          raise _NotBlessed(
              f'signature {call.signature!r} ({_api(call.method)}) failed in '
              f'the model server: {e}') from None
        if call.error:
          raise _NotBlessed(
              f'signature {call.signature!r} answers in the model server but '
              f'fails in-process: {call.error}')
        difference = _compare(call, served)
        if difference:
          raise _NotBlessed(f'signature {call.signature!r} ({_api(call.method)}) '
                            f'answered differently from the model: {difference}')
      if server.exit_code() is not None:
        raise _NotBlessed(f'the model server exited (status '
                          f'{server.exit_code()}) while it was being queried: '
                          f'{server.log_tail()}')
  finally:
    server.stop(STOP_GRACE_SECONDS)
  signatures = list(dict.fromkeys(c.signature for c in calls))
  return Result(True, '', signatures, len(calls))


def validate(model_dir: str, records: Sequence[bytes], model_name: str,
             log_path: str, signature_names: Sequence[str] = (),
             tags: Sequence[str] = (contract.SERVE_TAG,),
             max_loading_time_seconds: float = DEFAULT_MAX_LOADING_TIME_SECONDS,
             num_tries: int = DEFAULT_NUM_TRIES) -> Result:
  """Serves `model_dir` with `python -m serving` and checks it answers `records`
  (serialized tf.Examples) on every signature as it does in-process."""
  if not records:
    return Result(False, 'no examples to build requests from')
  base = tempfile.mkdtemp(prefix='infra-validation-')
  try:
    model_base_path = _stage_model(model_dir, base, model_name)
    died = ''
    for attempt in range(1, max(1, num_tries) + 1):
      try:
        return _validate_once(model_dir, model_base_path, model_name, records,
                              signature_names, tags, max_loading_time_seconds,
                              log_path)
      except _NotBlessed as e:
        if '\n' in str(e):
          logging.error('InfraValidator: %s', e)  # in full; the reason is one line
        return Result(False, _one_line(str(e)))
      except ServerDied as e:
        died = str(e)
        logging.warning('InfraValidator: attempt %d of %d: %s', attempt,
                        num_tries, died)
    return Result(False, _one_line(died))
  finally:
    shutil.rmtree(base, ignore_errors=True)


def _one_line(text: str, head: int = 160, tail: int = 160) -> str:
  """One line; a long message keeps its start and its end (where servers put
  the explanation after a proto dump)."""
  text = ' '.join(text.split())
  if len(text) <= head + tail + 5:
    return text
  return f'{text[:head].rstrip()} ... {text[-tail:].lstrip()}'


def _api(method: str) -> str:
  return _APIS[method]


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return f'{type(error).__name__}: {text.splitlines()[0] if text else ""}'.rstrip(': ')


# --- TFX ------------------------------------------------------------------------


def read_records(examples: types.Artifact, split: Optional[str],
                 count: int) -> List[bytes]:
  """The first `count` serialized tf.Examples of a split of an Examples
  artifact (ExampleGen's gzipped TFRecords)."""
  splits = artifact_utils.decode_split_names(examples.split_names)
  split = split or (splits[0] if splits else '')
  if split not in splits:
    raise ValueError(f'the examples have no split {split!r} (they have {splits})')
  pattern = os.path.join(artifact_utils.get_split_uri([examples], split), '*')
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise ValueError(f'no files match {pattern}')
  compression = 'GZIP' if all(f.endswith('.gz') for f in files) else ''
  dataset = tf.data.TFRecordDataset(files, compression_type=compression)
  return [record.numpy() for record in dataset.take(count)]


def write_blessing(blessing: types.Artifact, result: Result) -> None:
  """TFX's InfraBlessing: the marker file and `blessed`, plus what was checked."""
  name = BLESSED_FILE if result.blessed else NOT_BLESSED_FILE
  io_utils.write_string_file(os.path.join(blessing.uri, name),
                             result.reason + ('\n' if result.reason else ''))
  blessing.set_int_custom_property(BLESSED_KEY, int(result.blessed))
  blessing.set_string_custom_property(SIGNATURES_KEY, ','.join(result.signatures))
  blessing.set_int_custom_property(REQUESTS_KEY, result.requests)
  if result.reason:
    blessing.set_string_custom_property(REASON_KEY, result.reason)


def _parse(exec_properties: Dict[str, Any], key: str, message):
  if exec_properties.get(key):
    proto_utils.json_to_proto(exec_properties[key], message)
  return message


class Executor(base_executor.BaseExecutor):
  """Validates the model against `python -m serving` (see the module docstring)."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.BLESSING_KEY])
    serving_spec = _parse(exec_properties,
                          standard_component_specs.SERVING_SPEC_KEY,
                          infra_validator_pb2.ServingSpec())
    if serving_spec.WhichOneof('serving_platform'):
      raise ValueError(
          'LocalInfraValidator runs `python -m serving` on this machine; for '
          f'{serving_spec.WhichOneof("serving_platform")} use TFX\'s '
          'InfraValidator')
    validation_spec = _parse(exec_properties,
                             standard_component_specs.VALIDATION_SPEC_KEY,
                             infra_validator_pb2.ValidationSpec())
    request_spec = _parse(exec_properties,
                          standard_component_specs.REQUEST_SPEC_KEY,
                          infra_validator_pb2.RequestSpec())
    examples = input_dict.get(standard_component_specs.EXAMPLES_KEY)
    if not examples:
      raise ValueError('LocalInfraValidator needs `examples` to build requests')
    records = read_records(artifact_utils.get_single_instance(examples),
                           request_spec.split_name or None,
                           request_spec.num_examples or DEFAULT_NUM_EXAMPLES)
    model_dir = path_utils.serving_model_path(
        model.uri, path_utils.is_old_model_artifact(model))  # as the Pusher reads
    tf_serving = request_spec.tensorflow_serving
    started = time.monotonic()
    result = validate(
        model_dir, records, serving_spec.model_name or 'infra-validation-model',
        log_path=os.path.join(blessing.uri, SERVER_LOG_FILE),
        signature_names=list(tf_serving.signature_names),
        tags=list(tf_serving.tag_set) or [contract.SERVE_TAG],
        max_loading_time_seconds=(validation_spec.max_loading_time_seconds or
                                  DEFAULT_MAX_LOADING_TIME_SECONDS),
        num_tries=validation_spec.num_tries or DEFAULT_NUM_TRIES)
    if result.blessed:
      logging.info('InfraValidator: the model answered %d requests to %s as '
                   'in-process, in %.1f s', result.requests,
                   ', '.join(result.signatures), time.monotonic() - started)
    else:
      logging.error('InfraValidator: the model is not blessed: %s', result.reason)
    write_blessing(blessing, result)


class InfraValidator(base_component.BaseComponent):
  """TFX's InfraValidator (its spec, executor and driver) as a class that
  KubeflowV2DagRunner compiles.

  TFX 1.21's KFP v2 step builder refuses instances of
  tfx.components.InfraValidator outright (tfx/orchestration/kubeflow/v2/
  step_builder.py), although its executor runs in a KFP v2 step like any other
  once the step knows its namespace (kubeflow/runner.py's platform spec sets
  KFP_NAMESPACE, which KFP v1 set and v2 does not). Same arguments as TFX's.
  """

  SPEC_CLASS = standard_component_specs.InfraValidatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(tfx_executor.Executor)
  DRIVER_CLASS = base_driver.BaseDriver

  def __init__(
      self,
      model: types.BaseChannel,
      serving_spec: infra_validator_pb2.ServingSpec,
      examples: Optional[types.BaseChannel] = None,
      request_spec: Optional[infra_validator_pb2.RequestSpec] = None,
      validation_spec: Optional[infra_validator_pb2.ValidationSpec] = None):
    super().__init__(spec=standard_component_specs.InfraValidatorSpec(
        model=model,
        examples=examples,
        blessing=types.Channel(type=standard_artifacts.InfraBlessing),
        serving_spec=serving_spec,
        validation_spec=validation_spec,
        request_spec=request_spec))


class LocalInfraValidator(InfraValidator):
  """The InfraValidator validating against `python -m serving` on this machine.

  Takes InfraValidator's arguments; `serving_spec` names no serving platform
  (only `model_name` is read), and without `signature_names` in the request spec
  every signature of the model is called.
  """

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
