"""PredictionService and ModelService semantics, independent of the transport.

The gRPC front end (grpc_server.py) passes the official `tensorflow_serving.apis`
request protos straight here; the REST one (rest_server.py) builds the same protos
from JSON (for Predict it decodes JSON straight into arrays, which the same
Signature checks). So model selection, signature lookup, checks and error codes
are written once, following TF Serving's implementation (predict_util.cc,
classifier.cc, get_model_metadata_impl.cc, get_model_status_impl.cc).
"""

from typing import Dict

import numpy as np
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2

from serving import errors
from serving import model_registry
from serving import servable as servable_lib
from serving import tensors

CLASSIFY_METHOD = 'tensorflow/serving/classify'
CLASSIFY_INPUTS = 'inputs'
CLASSIFY_CLASSES = 'classes'
CLASSIFY_SCORES = 'scores'
SIGNATURE_DEF_FIELD = 'signature_def'


def response_model_spec(servable: servable_lib.Servable, signature_name: str,
                        spec: model_pb2.ModelSpec) -> None:
  spec.name = servable.name
  spec.version.value = servable.version
  spec.signature_name = signature_name


class Inference:
  """Answers Predict, Classify, GetModelMetadata and GetModelStatus requests."""

  def __init__(self, registry: model_registry.ModelRegistry,
               max_tensor_elements: int = 1 << 28,
               signature_method_name_check: bool = False):
    self.registry = registry
    self.max_tensor_elements = max_tensor_elements
    # TF Serving's --enable_signature_method_name_check, off by default there too.
    self.signature_method_name_check = signature_method_name_check

  # --- Predict ------------------------------------------------------------
  def predict_signature(self, servable: servable_lib.Servable,
                        name: str) -> servable_lib.Signature:
    signature = servable.signature(name)
    if signature is None:
      raise errors.ServingError(
          errors.Code.FAILED_PRECONDITION,
          f'Serving signature key "{name or servable_lib.DEFAULT_SIGNATURE}" '
          'not found.')
    return signature

  def predict(self, request: predict_pb2.PredictRequest
              ) -> predict_pb2.PredictResponse:
    """Runs a Predict request; raises ServingError for a bad request."""
    servable = self.registry.resolve(request.model_spec)
    signature = self.predict_signature(
        servable, request.model_spec.signature_name)
    inputs = tensors.to_ndarrays(request.inputs, self.max_tensor_elements)
    outputs = signature.submit(inputs, request.output_filter)
    response = predict_pb2.PredictResponse()
    response_model_spec(servable, signature.name, response.model_spec)
    for key, value in outputs.items():
      tensors.fill_proto(value, response.outputs[key])
    return response

  # --- Classify -----------------------------------------------------------
  def classify_signature(self, servable: servable_lib.Servable,
                         name: str) -> servable_lib.Signature:
    name = name or servable_lib.DEFAULT_SIGNATURE
    signature = servable.signature(name)
    if signature is None:
      raise errors.invalid_argument(
          f'No signature was found with the name: {name}')
    if (self.signature_method_name_check and
        signature.method_name != CLASSIFY_METHOD):
      raise errors.invalid_argument(
          'Expected classification signature method_name to be '
          f'{CLASSIFY_METHOD}. Was: {signature.method_name}')
    if len(signature.inputs) != 1:
      raise errors.invalid_argument('Expected one input Tensor.')
    if CLASSIFY_INPUTS not in signature.inputs:
      raise errors.invalid_argument(
          f'No classification inputs found in signature {name!r}: it takes '
          f'{sorted(signature.inputs)}, a classification signature takes '
          f'{CLASSIFY_INPUTS!r} (serialized tf.Examples)')
    if not {CLASSIFY_CLASSES, CLASSIFY_SCORES} & set(signature.outputs):
      raise errors.invalid_argument(
          'Expected classification signature outputs to contain at least one '
          f'of "{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature {name!r} '
          f'has outputs {sorted(signature.outputs)}')
    return signature

  def classify(self, request: classification_pb2.ClassificationRequest
               ) -> classification_pb2.ClassificationResponse:
    """Runs a Classify request; raises ServingError for a bad request."""
    servable = self.registry.resolve(request.model_spec)
    signature = self.classify_signature(
        servable, request.model_spec.signature_name)
    examples = serialized_examples(request.input)
    outputs = signature.submit({CLASSIFY_INPUTS: examples})
    response = classification_pb2.ClassificationResponse()
    response_model_spec(servable, signature.name, response.model_spec)
    fill_classification_result(outputs, len(examples), response.result)
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
    servable = self.registry.resolve(request.model_spec)
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


def fill_classification_result(outputs: Dict[str, np.ndarray], num_examples: int,
                               result: classification_pb2.ClassificationResult):
  """Per example, (label, score) pairs from the `classes`/`scores` outputs."""
  classes = outputs.get(CLASSIFY_CLASSES)
  scores = outputs.get(CLASSIFY_SCORES)
  for name, value in ((CLASSIFY_CLASSES, classes), (CLASSIFY_SCORES, scores)):
    if value is None:
      continue
    if value.ndim != 2:
      raise errors.invalid_argument(
          f'Expected Tensor shape: [batch_size num_classes] but got '
          f'{list(value.shape)} for {name!r}')
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
