"""PredictionService and ModelService semantics, independent of the transport.

The gRPC front end (grpc_server.py) passes the official `tensorflow_serving.apis`
request protos straight here; the REST one (rest_server.py) builds the same protos
from JSON, except for Predict (below). So model selection, signature lookup,
checks and error codes are written once, following TF Serving's implementation:
predict_impl.cc and predict_util.cc (Predict), classification_service.cc and
classifier.cc (Classify), regression_service.cc and regressor.cc (Regress),
multi_inference.cc and multi_inference_helper.cc (MultiInference),
get_model_metadata_impl.cc and get_model_status_impl.cc; the error texts are
TF Serving's.

Every call takes an optional `timeout_in_ms`, TF Serving's RunOptions.timeout_in_ms
for the graph run (a request merged into a batch runs without one).

REST Predict (`predict_arrays`) skips the PredictRequest proto: its JSON is
decoded straight into arrays of the signature's input dtypes (TF Serving's
http_rest_api_handler.cc decodes it against the signature's TensorInfos too),
which then take the same path as a gRPC Predict's inputs.

Each successful Predict, Classify, Regress and MultiInference call is offered to
the registry's request logger (TF Serving's ServerCore::Log, see
serving/core/request_logging.py), which samples it if the model has a logging_config;
for REST Predict the PredictRequest is built only if the call is sampled.
"""

from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import regression_pb2

from models import serving_contract as contract
from serving.core import errors
from serving.core import model_registry
from serving.core import request_logging
from serving.servables import servable as servable_lib
from serving.servables import tensors

# GetModelMetadata's one metadata field (get_model_metadata_impl.cc).
SIGNATURE_DEF_FIELD = 'signature_def'
# REST Predict's decoder: the signature's input dtypes -> the request's inputs.
Decode = Callable[[Mapping[str, tf.DType]], Dict[str, np.ndarray]]


def response_model_spec(servable: servable_lib.Servable, signature_name: str,
                        spec: model_pb2.ModelSpec) -> None:
  """TF Serving's MakeModelSpec (util.cc): "" becomes serving_default."""
  spec.name = servable.name
  spec.version.value = servable.version
  spec.signature_name = signature_name or contract.DEFAULT_SIGNATURE


def _debug_string(signature_def: meta_graph_pb2.SignatureDef) -> str:
  """The proto's text format, as C++ DebugString() prints it."""
  return text_format.MessageToString(signature_def)


def _shape_debug(array: np.ndarray) -> str:
  """TensorShape::DebugString(): [2,3], [] for a scalar."""
  return '[' + ','.join(str(d) for d in np.shape(array)) + ']'


def _check_method_and_input(signature_def: meta_graph_pb2.SignatureDef,
                            kind: str, method: str,
                            method_name_check: bool) -> None:
  """What classifier.cc and regressor.cc both check first: the method name (with
  --enable_signature_method_name_check) and a single input tensor."""
  if method_name_check and signature_def.method_name != method:
    raise errors.invalid_argument(
        f'Expected {kind} signature method_name to be {method}. Was: '
        f'{signature_def.method_name}')
  if len(signature_def.inputs) != 1:
    raise errors.invalid_argument('Expected one input Tensor.')


def preprocess_classification(
    signature_def: meta_graph_pb2.SignatureDef, name: str,
    method_name_check: bool) -> Tuple[str, List[str]]:
  """classifier.cc PreProcessClassification: (input tensor, output tensors)."""
  _check_method_and_input(signature_def, 'classification',
                          contract.CLASSIFY_METHOD, method_name_check)
  if len(signature_def.outputs) not in (1, 2):
    raise errors.invalid_argument(
        'Expected one or two output Tensors, found '
        f'{len(signature_def.outputs)}')
  if contract.CLASSIFY_INPUTS not in signature_def.inputs:
    [only] = signature_def.inputs
    raise errors.invalid_argument(
        'No classification inputs found in SignatureDef: '
        f'{_debug_string(signature_def)}(signature {name!r} takes {only!r}; a '
        "classification signature takes "
        f"'{contract.CLASSIFY_INPUTS}', serialized tf.Examples)")
  outputs = [signature_def.outputs[key].name
             for key in (contract.CLASSIFY_CLASSES, contract.CLASSIFY_SCORES)
             if key in signature_def.outputs]
  if not outputs:
    raise errors.invalid_argument(
        'Expected classification signature outputs to contain at least one '
        f'of "{contract.CLASSIFY_CLASSES}" or "{contract.CLASSIFY_SCORES}". '
        'Signature was: '
        f'{_debug_string(signature_def)}')
  return signature_def.inputs[contract.CLASSIFY_INPUTS].name, outputs


def preprocess_regression(
    signature_def: meta_graph_pb2.SignatureDef,
    method_name_check: bool) -> Tuple[str, List[str]]:
  """regressor.cc PreProcessRegression: (input tensor, [output tensor])."""
  _check_method_and_input(signature_def, 'regression', contract.REGRESS_METHOD,
                          method_name_check)
  if len(signature_def.outputs) != 1:
    raise errors.invalid_argument('Expected one output Tensor.')
  if contract.REGRESS_INPUTS not in signature_def.inputs:
    raise errors.invalid_argument(
        'No regression inputs found in SignatureDef: '
        f'{_debug_string(signature_def)}')
  if contract.REGRESS_OUTPUTS not in signature_def.outputs:
    raise errors.invalid_argument(
        'No regression outputs found in SignatureDef: '
        f'{_debug_string(signature_def)}')
  return (signature_def.inputs[contract.REGRESS_INPUTS].name,
          [signature_def.outputs[contract.REGRESS_OUTPUTS].name])


class Inference:
  """Answers Predict, Classify, Regress, MultiInference, GetModelMetadata and
  GetModelStatus requests."""

  def __init__(self, registry: model_registry.ModelRegistry, *,
               max_message_bytes: int, outputs_as_tensor_content: bool,
               signature_method_name_check: bool):
    """The settings are the server's flags: --max_message_bytes,
    --enable_serialization_as_tensor_content (Predict outputs as
    tensor_content bytes) and --enable_signature_method_name_check."""
    self.registry = registry
    # A legitimate tensor costs at least one byte per element on the wire; more
    # elements can only come from "fill" protos, which are refused.
    self.max_tensor_elements = max_message_bytes
    self.outputs_as_tensor_content = outputs_as_tensor_content
    self.signature_method_name_check = signature_method_name_check

  def resolve(self, spec: model_pb2.ModelSpec) -> servable_lib.Servable:
    """ServerCore::GetServableHandle: the servable a ModelSpec names."""
    if not spec.name:
      raise errors.invalid_argument('ModelSpec has no name specified.')
    return self.registry.resolve(spec)

  # --- Predict ------------------------------------------------------------
  def _predict_signature(self, servable: servable_lib.Servable, name: str,
                         rest: bool = False) -> servable_lib.Signature:
    """The signature a Predict request names, with predict_util.cc's checks
    (--enable_signature_method_name_check: an INTERNAL error there)."""
    signature = servable.signature(name)
    name = name or contract.DEFAULT_SIGNATURE
    if signature is None and rest:
      # http_rest_api_handler.cc GetInfoMap, before the JSON is decoded.
      raise errors.invalid_argument(
          f'Serving signature name: "{name}" not found in signature def')
    if signature is None:
      raise errors.ServingError(errors.Code.FAILED_PRECONDITION,
                                f'Serving signature key "{name}" not found.')
    methods = (contract.PREDICT_METHOD, contract.CLASSIFY_METHOD,
               contract.REGRESS_METHOD)
    if (self.signature_method_name_check and
        signature.method_name not in methods):
      raise errors.ServingError(
          errors.Code.INTERNAL,
          'Expected prediction signature method_name to be one of '
          f'{{{", ".join(methods)}}}. Was: {signature.method_name}')
    return signature

  def predict(self, request: predict_pb2.PredictRequest,
              timeout_in_ms: int = 0) -> predict_pb2.PredictResponse:
    """Runs a Predict request; raises ServingError for a bad request."""
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    servable = self.resolve(request.model_spec)
    signature = self._predict_signature(
        servable, request.model_spec.signature_name)
    inputs = tensors.to_ndarrays(request.inputs, self.max_tensor_elements)
    outputs = signature.submit(inputs, request.output_filter, timeout_in_ms)
    response = self._predict_response(servable, signature, outputs)
    self._log(request_logging.PREDICT, request, response, response.model_spec)
    return response

  def predict_arrays(self, spec: model_pb2.ModelSpec, decode: Decode
                     ) -> Dict[str, np.ndarray]:
    """REST Predict: the outputs for the inputs `decode` makes of the request
    once it is given the signature's input dtypes. The call is logged as the
    PredictRequest TF Serving's REST handler makes (built only if sampled)."""
    servable = self.resolve(spec)
    signature = self._predict_signature(servable, spec.signature_name,
                                        rest=True)
    inputs = decode({key: t.dtype for key, t in signature.inputs.items()})
    outputs = signature.submit(inputs)

    def entry():
      request = predict_pb2.PredictRequest()
      request.model_spec.CopyFrom(spec)
      for key, value in inputs.items():
        tensors.fill_proto(value, request.inputs[key])
      response = self._predict_response(servable, signature, outputs)
      return request, response, response.model_spec
    self.registry.request_logger.log(servable.name, request_logging.PREDICT,
                                     entry)
    return outputs

  def _predict_response(self, servable: servable_lib.Servable,
                        signature: servable_lib.Signature,
                        outputs: Mapping[str, np.ndarray]
                        ) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    response_model_spec(servable, signature.name, response.model_spec)
    for key, value in outputs.items():
      tensors.fill_proto(value, response.outputs[key],
                         self.outputs_as_tensor_content)
    return response

  def _log(self, kind: str, request, response,
           spec: model_pb2.ModelSpec) -> None:
    """Offers a successful call to the request logger (ServerCore::Log)."""
    self.registry.request_logger.log(spec.name, kind,
                                     lambda: (request, response, spec))

  # --- Classify and Regress -------------------------------------------------
  def _signature_def(self, servable: servable_lib.Servable,
                     name: str) -> meta_graph_pb2.SignatureDef:
    signature_def = servable.signature_defs.get(
        name or contract.DEFAULT_SIGNATURE)
    if signature_def is None:
      raise errors.invalid_argument(
          'No signature was found with the name: '
          f'{name or contract.DEFAULT_SIGNATURE}')
    return signature_def

  @staticmethod
  def _runnable(servable: servable_lib.Servable,
                name: str) -> servable_lib.Signature:
    signature = servable.signature(name)
    if signature is None:  # Sparse or composite tensors: see servable.py.
      raise errors.invalid_argument(
          f'Signature {name or contract.DEFAULT_SIGNATURE!r} cannot be run '
          'by this server')
    return signature

  def classify_signature(self, servable: servable_lib.Servable,
                         name: str) -> servable_lib.Signature:
    """classifier.cc GetClassificationSignatureDef + PreProcessClassification."""
    name = name or contract.DEFAULT_SIGNATURE
    preprocess_classification(self._signature_def(servable, name), name,
                              self.signature_method_name_check)
    return self._runnable(servable, name)

  def classify(self, request: classification_pb2.ClassificationRequest,
               timeout_in_ms: int = 0
               ) -> classification_pb2.ClassificationResponse:
    """Runs a Classify request; raises ServingError for a bad request."""
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    servable = self.resolve(request.model_spec)
    signature = self.classify_signature(
        servable, request.model_spec.signature_name)
    examples = tensors.serialized_examples(request.input)
    outputs = signature.submit({contract.CLASSIFY_INPUTS: examples},
                               timeout_in_ms=timeout_in_ms)
    response = classification_pb2.ClassificationResponse()
    response_model_spec(servable, request.model_spec.signature_name,
                        response.model_spec)
    fill_classification_result(outputs, len(examples), response.result)
    self._log(request_logging.CLASSIFY, request, response, response.model_spec)
    return response

  def regress_signature(self, servable: servable_lib.Servable,
                        name: str) -> servable_lib.Signature:
    """regressor.cc GetRegressionSignatureDef + PreProcessRegression."""
    name = name or contract.DEFAULT_SIGNATURE
    preprocess_regression(self._signature_def(servable, name),
                          self.signature_method_name_check)
    return self._runnable(servable, name)

  def regress(self, request: regression_pb2.RegressionRequest,
              timeout_in_ms: int = 0) -> regression_pb2.RegressionResponse:
    """Runs a Regress request (regression_service.cc, regressor.cc)."""
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    servable = self.resolve(request.model_spec)
    signature = self.regress_signature(
        servable, request.model_spec.signature_name)
    response = regression_pb2.RegressionResponse()
    response_model_spec(servable, request.model_spec.signature_name,
                        response.model_spec)
    examples = tensors.serialized_examples(request.input)
    outputs = signature.submit({contract.REGRESS_INPUTS: examples},
                               timeout_in_ms=timeout_in_ms)
    fill_regression_result(outputs[contract.REGRESS_OUTPUTS], len(examples),
                           response.result)
    self._log(request_logging.REGRESS, request, response, response.model_spec)
    return response

  # --- MultiInference -------------------------------------------------------
  def multi_inference(self, request: inference_pb2.MultiInferenceRequest,
                      timeout_in_ms: int = 0
                      ) -> inference_pb2.MultiInferenceResponse:
    """Classify and regress tasks over one input in one graph run.

    multi_inference_helper.cc picks the servable by the first task's ModelSpec;
    multi_inference.cc checks every task (same model, distinct signatures,
    method classify or regress), runs the union of their outputs once and
    answers one result per task, in order, each with its own ModelSpec.
    """
    spec = (request.tasks[0].model_spec
            if request.tasks and request.tasks[0].HasField('model_spec')
            else model_pb2.ModelSpec())
    servable = self.resolve(spec)
    model_name = ''
    seen = set()
    input_names, output_names = [], []
    plans = []
    for task in request.tasks:
      if not task.model_spec.name:
        raise errors.invalid_argument(
            'Found ModelSpec with an empty model name.')
      if not model_name:
        model_name = task.model_spec.name
      elif task.model_spec.name != model_name:
        raise errors.invalid_argument(
            'All ModelSpecs in a MultiInferenceRequest must access the same '
            'model name.')
      name = task.model_spec.signature_name or contract.DEFAULT_SIGNATURE
      if name in seen:
        raise errors.invalid_argument(
            f'Duplicate evaluation of signature: {name}')
      seen.add(name)
      signature_def = servable.signature_defs.get(name)
      if signature_def is None:
        raise errors.invalid_argument(
            f'Requested signature not found in model graph: {name}')
      if task.method_name == contract.CLASSIFY_METHOD:
        input_name, outputs = preprocess_classification(
            signature_def, name, self.signature_method_name_check)
      elif task.method_name == contract.REGRESS_METHOD:
        input_name, outputs = preprocess_regression(
            signature_def, self.signature_method_name_check)
      else:
        raise errors.ServingError(
            errors.Code.UNIMPLEMENTED,
            f'Unsupported signature method_name: {task.method_name}')
      input_names.append(input_name)
      output_names.extend(outputs)
      plans.append((task, signature_def))
    examples = tensors.serialized_examples(request.input)
    feeds = {input_name: examples for input_name in input_names}
    try:
      values = servable.run_tensors(feeds, output_names, timeout_in_ms)
    except Exception as e:  # pylint: disable=broad-except
      raise errors.from_exception(e) from e
    response = inference_pb2.MultiInferenceResponse()
    for task, signature_def in plans:
      result = response.results.add()
      outputs = {alias: values[info.name]
                 for alias, info in signature_def.outputs.items()
                 if info.name in values}
      if task.method_name == contract.CLASSIFY_METHOD:
        fill_classification_result(outputs, len(examples),
                                   result.classification_result)
      else:
        fill_regression_result(outputs[contract.REGRESS_OUTPUTS], len(examples),
                               result.regression_result)
      response_model_spec(servable, task.model_spec.signature_name,
                          result.model_spec)
      result.model_spec.name = task.model_spec.name
    self._log(request_logging.MULTI_INFERENCE, request, response,
              response.results[0].model_spec)
    return response

  # --- GetModelMetadata ----------------------------------------------------
  def get_model_metadata(
      self, request: get_model_metadata_pb2.GetModelMetadataRequest
  ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    if not request.metadata_field:
      raise errors.invalid_argument(
          'GetModelMetadataRequest must specify at least one metadata_field')
    for field in request.metadata_field:
      if field != SIGNATURE_DEF_FIELD:
        raise errors.invalid_argument(f'Metadata field {field} is not supported')
    servable = self.resolve(request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
      signature_map.signature_def[key].CopyFrom(signature_def)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response

  # --- GetModelStatus -------------------------------------------------------
  def get_model_status(
      self, request: get_model_status_pb2.GetModelStatusRequest
  ) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    spec = request.model_spec
    version = spec.version.value if spec.HasField('version') else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in self.registry.version_statuses(spec.name, version):
      response.model_version_status.add().CopyFrom(status)
    return response


def fill_classification_result(outputs: Mapping[str, np.ndarray],
                               num_examples: int,
                               result: classification_pb2.ClassificationResult):
  """Per example, (label, score) pairs from the `classes`/`scores` outputs
  (classifier.cc PostProcessClassificationResult: its checks and texts)."""
  classes = outputs.get(contract.CLASSIFY_CLASSES)
  scores = outputs.get(contract.CLASSIFY_SCORES)
  for name, value, dtype, dtype_name in (
      (contract.CLASSIFY_CLASSES, classes, None, 'DT_STRING'),
      (contract.CLASSIFY_SCORES, scores, np.float32, 'DT_FLOAT')):
    if value is None:
      continue
    if value.ndim != 2:
      raise errors.invalid_argument(
          'Expected Tensor shape: [batch_size num_classes] but got '
          f'{_shape_debug(value)}')
    ok = (value.dtype.kind in 'OSU' if dtype is None else value.dtype == dtype)
    if not ok:
      raise errors.invalid_argument(
          f'Expected {name} Tensor of {dtype_name}. Got: '
          f'{tensors.dtype_name(tensors.datatype(value.dtype))}')
    if value.shape[0] != num_examples:
      raise errors.invalid_argument(
          f'Expected {name} output batch size of {num_examples}. '
          f'Got: {value.shape[0]}')
  if classes is not None and scores is not None and (
      classes.shape[1] != scores.shape[1]):
    raise errors.invalid_argument(
        'Tensors class and score should match in dim_size(1). Got '
        f'{classes.shape[1]} vs. {scores.shape[1]}')
  num_classes = (classes if classes is not None else scores).shape[1]
  for i in range(num_examples):
    classifications = result.classifications.add()
    for j in range(num_classes):
      entry = classifications.classes.add()
      if classes is not None:
        label = classes[i, j]
        entry.label = label.decode('utf-8', 'replace') if isinstance(
            label, bytes) else str(label)
      if scores is not None:
        entry.score = float(scores[i, j])


def fill_regression_result(value: np.ndarray, num_examples: int,
                           result: regression_pb2.RegressionResult) -> None:
  """One value per example from the `outputs` tensor (regressor.cc
  PostProcessRegressionResult: its checks and texts)."""
  value = np.asarray(value)
  if not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
    raise errors.invalid_argument(
        'Expected output Tensor shape to be either [batch_size] or '
        f'[batch_size, 1] but got {_shape_debug(value)}')
  if value.shape[0] != num_examples:
    raise errors.invalid_argument(
        'Input batch size did not match output batch size: '
        f'{num_examples} vs. {value.shape[0]}')
  if value.dtype != np.float32:
    raise errors.invalid_argument(
        'Expected output Tensor of DT_FLOAT.  Got: '
        f'{tensors.dtype_name(tensors.datatype(value.dtype))}')
  for item in value.reshape(-1).tolist():
    result.regressions.add().value = item
