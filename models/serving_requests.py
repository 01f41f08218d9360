"""TF Serving requests built from tf.Examples: the one place requests are made.

Three programs send the model requests: the exporter, which records warm-up
requests in every version (models/trainer/warmup_requests.py); the
InfraValidator, which checks a candidate in a model server
(components/infra_validator.py); and the client (pipeline/client.py). All build
them here, from serialized tf.Examples of the feature contract
(models/features.py), so the three send the same requests:

- Predict: each input from the examples. A string input takes them as they are
  (`serving_default`'s `examples`); a float [N, 784] input takes their pixels in
  [0, 1] (`predict_images`'s `images`, TF Serving's MNIST tutorial contract).
- Classify and Regress: the examples in the request's Input.

Digits given as pixels (uint8 [N, 784]) become examples with `encode_examples`.
TensorFlow is imported inside the functions: the CLI imports this file through
the client without loading it.
"""

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from models import features
from models import serving_contract as contract

# pylint: disable=g-import-not-at-top


def as_pixels(images: np.ndarray) -> np.ndarray:
  """uint8 [N, 784] from an [N, 784] or [784] array of values in 0-255."""
  images = np.asarray(images)
  if images.ndim == 1:
    images = images[np.newaxis]
  if images.ndim != 2 or images.shape[1] != features.IMAGE_PIXELS:
    raise ValueError(
        f'expected images of shape [N, {features.IMAGE_PIXELS}], got '
        f'{list(images.shape)}')
  if images.dtype != np.uint8 and images.size and (
      images.min() < 0 or images.max() > 255):
    raise ValueError('pixel values must be in 0-255')
  return images.astype(np.uint8, copy=False)


def encode_examples(images: np.ndarray) -> List[bytes]:
  """Serialized tf.Examples, one per row of uint8 `images` [N, 784]."""
  return [features.example(row.tolist()).SerializeToString()
          for row in as_pixels(images)]


def unit_floats(images: np.ndarray) -> np.ndarray:
  """float32 [N, 784] in [0, 1], the `predict_images` input."""
  return as_pixels(images).astype(np.float32) / 255.0


def pixels_of_examples(records: Sequence[bytes]) -> np.ndarray:
  """float32 [N, 784] in [0, 1]: the `image` feature of serialized tf.Examples;
  ValueError for an example without 784 values there."""
  from tensorflow.core.example import example_pb2
  rows = []
  for record in records:
    values = example_pb2.Example.FromString(record).features.feature[
        features.IMAGE_KEY].int64_list.value
    if len(values) != features.IMAGE_PIXELS:
      raise ValueError(f'an example has {len(values)} values in '
                       f'{features.IMAGE_KEY!r}, not {features.IMAGE_PIXELS}')
    rows.append(np.asarray(values, np.float32) / 255.0)
  return np.stack(rows) if rows else np.zeros((0, features.IMAGE_PIXELS),
                                              np.float32)


def digit_inputs(signature_name: str,
                 records: Sequence[bytes]) -> Dict[str, np.ndarray]:
  """The Predict inputs of the pushed model's two digit signatures
  (contract.PREDICT_SIGNATURES) for serialized tf.Examples."""
  if signature_name == contract.IMAGES_SIGNATURE:
    return {contract.IMAGES_INPUT: pixels_of_examples(records)}
  if signature_name == contract.DEFAULT_SIGNATURE:
    return {contract.EXAMPLES_INPUT: np.asarray(list(records), dtype=object)}
  raise ValueError('signature_name must be one of '
                   f'{contract.PREDICT_SIGNATURES}, got {signature_name!r}')


def fill_model_spec(spec, model_name: str, signature_name: str = '',
                    version: Optional[int] = None,
                    version_label: Optional[str] = None) -> None:
  """A request's ModelSpec: no version means the latest, as in TF Serving."""
  spec.name = model_name
  if signature_name:
    spec.signature_name = signature_name
  if version is not None:
    spec.version.value = version
  elif version_label:
    spec.version_label = version_label


def predict_request(model_name: str, signature_name: str,
                    inputs: Mapping[str, np.ndarray],
                    version: Optional[int] = None,
                    version_label: Optional[str] = None):
  """A PredictRequest; arrays of Python objects (bytes) go as DT_STRING."""
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  request = predict_pb2.PredictRequest()
  fill_model_spec(request.model_spec, model_name, signature_name, version,
                  version_label)
  for key, value in inputs.items():
    value = np.asarray(value)
    request.inputs[key].CopyFrom(tf.make_tensor_proto(
        value, dtype=tf.string if value.dtype == object else None))
  return request


def _examples_request(request, model_name: str, signature_name: str,
                      records: Sequence[bytes], version: Optional[int],
                      version_label: Optional[str]):
  """`request` (Classify's or Regress's) with its ModelSpec and the examples."""
  from tensorflow.core.example import example_pb2
  fill_model_spec(request.model_spec, model_name, signature_name, version,
                  version_label)
  examples = request.input.example_list.examples
  for record in records:
    examples.add().CopyFrom(example_pb2.Example.FromString(record))
  return request


def classification_request(model_name: str, signature_name: str,
                           records: Sequence[bytes],
                           version: Optional[int] = None,
                           version_label: Optional[str] = None):
  """A ClassificationRequest for serialized tf.Examples."""
  from tensorflow_serving.apis import classification_pb2
  return _examples_request(classification_pb2.ClassificationRequest(),
                           model_name, signature_name, records, version,
                           version_label)


def regression_request(model_name: str, signature_name: str,
                       records: Sequence[bytes],
                       version: Optional[int] = None,
                       version_label: Optional[str] = None):
  """A RegressionRequest for serialized tf.Examples."""
  from tensorflow_serving.apis import regression_pb2
  return _examples_request(regression_pb2.RegressionRequest(), model_name,
                           signature_name, records, version, version_label)
