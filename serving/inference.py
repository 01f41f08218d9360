"""PredictionService and ModelService semantics, independent of the transport.

The gRPC front end (grpc_server.py) passes the official `tensorflow_serving.apis`
request protos straight here; the REST one (rest_server.py) builds the same protos
from JSON (for Predict it decodes JSON straight into arrays, which the same
Signature checks). So model selection, signature lookup, checks and error codes
are written once, following TF Serving's implementation: predict_impl.cc and
predict_util.cc (Predict), classification_service.cc and classifier.cc
(Classify), regression_service.cc and regressor.cc (Regress), multi_inference.cc
and multi_inference_helper.cc (MultiInference), get_model_metadata_impl.cc and
get_model_status_impl.cc; the error texts are TF Serving's.

Every call takes an optional `timeout_in_ms`, TF Serving's RunOptions.timeout_in_ms
for the graph run (a request merged into a batch runs without one).

Each successful Predict, Classify, Regress and MultiInference call is offered to
the registry's request logger (TF Serving's ServerCore::Log, see
serving/request_logging.py), which samples it if the model has a logging_config;
REST Predict, which skips the PredictRequest proto, calls `log_rest_predict`.
"""

from typing import List, Mapping, Tuple

import numpy as np
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import regression_pb2

from serving import errors
from serving import model_registry
from serving import request_logging
from serving import servable as servable_lib
from serving import tensors

PREDICT_METHOD = 'tensorflow/serving/predict'
CLASSIFY_METHOD = 'tensorflow/serving/classify'
REGRESS_METHOD = 'tensorflow/serving/regress'
CLASSIFY_INPUTS = 'inputs'
CLASSIFY_CLASSES = 'classes'
CLASSIFY_SCORES = 'scores'
REGRESS_INPUTS = 'inputs'
REGRESS_OUTPUTS = 'outputs'
SIGNATURE_DEF_FIELD = 'signature_def'


def response_model_spec(servable: servable_lib.Servable, signature_name: str,
                        spec: model_pb2.ModelSpec) -> None:
  """TF Serving's MakeModelSpec (util.cc): "" becomes serving_default."""
  spec.name = servable.name
  spec.version.value = servable.version
  spec.signature_name = signature_name or servable_lib.DEFAULT_SIGNATURE


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
  _check_method_and_input(signature_def, 'classification', CLASSIFY_METHOD,
                          method_name_check)
  if len(signature_def.outputs) not in (1, 2):
    raise errors.invalid_argument(
        'Expected one or two output Tensors, found '
        f'{len(signature_def.outputs)}')
  if CLASSIFY_INPUTS not in signature_def.inputs:
    [only] = signature_def.inputs
    raise errors.invalid_argument(
        'No classification inputs found in SignatureDef: '
        f'{_debug_string(signature_def)}(signature {name!r} takes {only!r}; a '
        f"classification signature takes '{CLASSIFY_INPUTS}', serialized "
        'tf.Examples)')
  outputs = [signature_def.outputs[key].name
             for key in (CLASSIFY_CLASSES, CLASSIFY_SCORES)
             if key in signature_def.outputs]
  if not outputs:
    raise errors.invalid_argument(
        'Expected classification signature outputs to contain at least one '
        f'of "{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature was: '
        f'{_debug_string(signature_def)}')
  return signature_def.inputs[CLASSIFY_INPUTS].name, outputs


def preprocess_regression(
    signature_def: meta_graph_pb2.SignatureDef,
    method_name_check: bool) -> Tuple[str, List[str]]:
  """regressor.cc PreProcessRegression: (input tensor, [output tensor])."""
  _check_method_and_input(signature_def, 'regression', REGRESS_METHOD,
                          method_name_check)
  if len(signature_def.outputs) != 1:
    raise errors.invalid_argument('Expected one output Tensor.')
  if REGRESS_INPUTS not in signature_def.inputs:
    raise errors.invalid_argument(
        'No regression inputs found in SignatureDef: '
        f'{_debug_string(signature_def)}')
  if REGRESS_OUTPUTS not in signature_def.outputs:
    raise errors.invalid_argument(
        'No regression outputs found in SignatureDef: '
        f'{_debug_string(signature_def)}')
  return (signature_def.inputs[REGRESS_INPUTS].name,
          [signature_def.outputs[REGRESS_OUTPUTS].name])


class Inference:
  """Answers Predict, Classify, Regress, MultiInference, GetModelMetadata and
  GetModelStatus requests."""

  def __init__(self, registry: model_registry.ModelRegistry,
               max_tensor_elements: int = 1 << 28,
               signature_method_name_check: bool = False,
               outputs_as_tensor_content: bool = False):
    self.registry = registry
    self.max_tensor_elements = max_tensor_elements
    # TF Serving's --enable_serialization_as_tensor_content (Predict outputs).
    self.outputs_as_tensor_content = outputs_as_tensor_content
    # TF Serving's --enable_signature_method_name_check, off by default there too.
    self.signature_method_name_check = signature_method_name_check

  def resolve(self, spec: model_pb2.ModelSpec) -> servable_lib.Servable:
    """ServerCore::GetServableHandle: the servable a ModelSpec names."""
    if not spec.name:
      raise errors.invalid_argument('ModelSpec has no name specified.')
    return self.registry.resolve(spec)

  # --- Predict ------------------------------------------------------------
  def predict_signature(self, servable: servable_lib.Servable,
                        name: str) -> servable_lib.Signature:
    signature = servable.signature(name)
    if signature is None:
      raise errors.ServingError(
          errors.Code.FAILED_PRECONDITION,
          f'Serving signature key "{name or servable_lib.DEFAULT_SIGNATURE}" '
          'not found.')
    if self.signature_method_name_check and signature.method_name not in (
        PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
      # predict_util.cc VerifySignature: an INTERNAL error there.
      raise errors.ServingError(
          errors.Code.INTERNAL,
          'Expected prediction signature method_name to be one of '
          f'{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: '
          f'{signature.method_name}')
    return signature

  def predict(self, request: predict_pb2.PredictRequest,
              timeout_in_ms: int = 0) -> predict_pb2.PredictResponse:
    """Runs a Predict request; raises ServingError for a bad request."""
    if not request.HasField('model_spec'):
      raise errors.invalid_argument('Missing ModelSpec')
    servable = self.resolve(request.model_spec)
    signature = self.predict_signature(
        servable, request.model_spec.signature_name)
    inputs = tensors.to_ndarrays(request.inputs, self.max_tensor_elements)
    outputs = signature.submit(inputs, request.output_filter, timeout_in_ms)
    response = predict_pb2.PredictResponse()
    response_model_spec(servable, signature.name, response.model_spec)
    for key, value in outputs.items():
      tensors.fill_proto(value, response.outputs[key],
                         self.outputs_as_tensor_content)
    self._log(request_logging.PREDICT, request, response, response.model_spec)
    return response

  def log_rest_predict(self, servable: servable_lib.Servable,
                       request_spec: model_pb2.ModelSpec,
                       inputs: Mapping[str, np.ndarray],
                       outputs: Mapping[str, np.ndarray]) -> None:
    """Logs a successful REST Predict call as the PredictRequest and
    PredictResponse TF Serving's REST handler would have made of it (built only
    if the call is sampled)."""
    def entry():
      request = predict_pb2.PredictRequest()
      request.model_spec.CopyFrom(request_spec)
      for key, value in inputs.items():
        tensors.fill_proto(value, request.inputs[key])
      response = predict_pb2.PredictResponse()
      response_model_spec(servable, request_spec.signature_name,
                          response.model_spec)
      for key, value in outputs.items():
        tensors.fill_proto(value, response.outputs[key],
                           self.outputs_as_tensor_content)
      return request, response, response.model_spec
    self.registry.request_logger.log(servable.name, request_logging.PREDICT,
                                     entry)

  def _log(self, kind: str, request, response,
           spec: model_pb2.ModelSpec) -> None:
    """Offers a successful call to the request logger (ServerCore::Log)."""
    self.registry.request_logger.log(spec.name, kind,
                                     lambda: (request, response, spec))

  # --- Classify and Regress -------------------------------------------------
  def _signature_def(self, servable: servable_lib.Servable,
                     name: str) -> meta_graph_pb2.SignatureDef:
    signature_def = servable.signature_defs.get(
        name or servable_lib.DEFAULT_SIGNATURE)
    if signature_def is None:
      raise errors.invalid_argument(
          'No signature was found with the name: '
          f'{name or servable_lib.DEFAULT_SIGNATURE}')
    return signature_def

  @staticmethod
  def _runnable(servable: servable_lib.Servable,
                name: str) -> servable_lib.Signature:
    signature = servable.signature(name)
    if signature is None:  # Sparse or composite tensors: see servable.py.
      raise errors.invalid_argument(
          f'Signature {name or servable_lib.DEFAULT_SIGNATURE!r} cannot be run '
          'by this server')
    return signature

  def classify_signature(self, servable: servable_lib.Servable,
                         name: str) -> servable_lib.Signature:
    """classifier.cc GetClassificationSignatureDef + PreProcessClassification."""
    name = name or servable_lib.DEFAULT_SIGNATURE
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
    examples = serialized_examples(request.input)
    outputs = signature.submit({CLASSIFY_INPUTS: examples},
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
    name = name or servable_lib.DEFAULT_SIGNATURE
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
    examples = serialized_examples(request.input)
    outputs = signature.submit({REGRESS_INPUTS: examples},
                               timeout_in_ms=timeout_in_ms)
    fill_regression_result(outputs[REGRESS_OUTPUTS], len(examples),
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
      name = task.model_spec.signature_name or servable_lib.DEFAULT_SIGNATURE
      if name in seen:
        raise errors.invalid_argument(
            f'Duplicate evaluation of signature: {name}')
      seen.add(name)
      signature_def = servable.signature_defs.get(name)
      if signature_def is None:
        raise errors.invalid_argument(
            f'Requested signature not found in model graph: {name}')
      if task.method_name == CLASSIFY_METHOD:
        input_name, outputs = preprocess_classification(
            signature_def, name, self.signature_method_name_check)
      elif task.method_name == REGRESS_METHOD:
        input_name, outputs = preprocess_regression(
            signature_def, self.signature_method_name_check)
      else:
        raise errors.ServingError(
            errors.Code.UNIMPLEMENTED,
            f'Unsupported signature method_name: {task.method_name}')
      input_names.append(input_name)
      output_names.extend(outputs)
      plans.append((task, signature_def))
    examples = serialized_examples(request.input)
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
      if task.method_name == CLASSIFY_METHOD:
        fill_classification_result(outputs, len(examples),
                                   result.classification_result)
      else:
        fill_regression_result(outputs[REGRESS_OUTPUTS], len(examples),
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


def serialized_examples(model_input: input_pb2.Input) -> np.ndarray:
  """The Input's tf.Examples, serialized (context merged in), as TF Serving does."""
  kind = model_input.WhichOneof('kind')
  if kind == 'example_list':
    examples = [e.SerializeToString() for e in model_input.example_list.examples]
  elif kind == 'example_list_with_context':
    with_context = model_input.example_list_with_context
    # Concatenated serialized protos parse as one merged proto: the context's
    # features plus the example's.
    context = with_context.context.SerializeToString()
    examples = [context + e.SerializeToString() for e in with_context.examples]
  else:
    examples = []
  if not examples:
    raise errors.invalid_argument('Input is empty.')
  array = np.empty(len(examples), dtype=object)
  array[:] = examples
  return array


def fill_classification_result(outputs: Mapping[str, np.ndarray],
                               num_examples: int,
                               result: classification_pb2.ClassificationResult):
  """Per example, (label, score) pairs from the `classes`/`scores` outputs
  (classifier.cc PostProcessClassificationResult: its checks and texts)."""
  classes = outputs.get(CLASSIFY_CLASSES)
  scores = outputs.get(CLASSIFY_SCORES)
  for name, value, dtype, dtype_name in (
      (CLASSIFY_CLASSES, classes, None, 'DT_STRING'),
      (CLASSIFY_SCORES, scores, np.float32, 'DT_FLOAT')):
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
