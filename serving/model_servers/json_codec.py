"""TF Serving's REST JSON formats (g3doc/api_rest.md, util/json_tensor.cc).

Predict takes row (`instances`) or columnar (`inputs`) tensors and answers in the
same layout (`predictions` or `outputs`); Classify and Regress take `examples`
(+ `context`) as feature maps and answer `results`: [label, score] pairs per
example, or one number per example (api_rest.md calls the key `result`; TF
Serving's code, json_tensor.cc, and therefore its clients use `results`).
Binary strings travel as {"b64": ...}; output tensors whose name ends in `_bytes`
are always written that way. NaN and Infinity are accepted and written, as TF
Serving does. Error messages follow TF Serving's wording where it says what was
expected.
"""

import base64
import binascii
import json
import re
from typing import Any, Dict, List, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.example import feature_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import regression_pb2

from serving.core import errors

ROW, COLUMNAR = 'row', 'columnar'
_B64 = 'b64'


def _debug(value: Any, limit: int = 80) -> str:
  text = json.dumps(value)
  return text if len(text) <= limit else text[:limit] + '...'


def _json_type(value: Any) -> str:
  if value is None:
    return 'Null'
  if isinstance(value, bool):
    return 'True' if value else 'False'
  if isinstance(value, dict):
    return 'Object'
  if isinstance(value, list):
    return 'Array'
  if isinstance(value, str):
    return 'String'
  return 'Number'


def _is_b64(value: Any) -> bool:
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get(_B64), str))


def _decode_b64(value: Dict[str, str]) -> bytes:
  try:
    return base64.b64decode(value[_B64], validate=True)
  except (binascii.Error, ValueError):
    raise errors.invalid_argument('Unable to base64 decode') from None


# Arrays and objects inside one another. A tensor has at most 64 dimensions (as
# NumPy holds it), so a request needs far fewer; deeper ones would only exhaust
# the stack of the code that walks them.
MAX_JSON_DEPTH = 100
# A \\u escape of a UTF-16 surrogate: the only way JSON text can carry one.
_SURROGATE_ESCAPE = re.compile(rb'\\u[dD][89a-fA-F]')


def parse(body: bytes) -> Dict[str, Any]:
  """The request document; INVALID_ARGUMENT unless it is a JSON object that
  nests at most MAX_JSON_DEPTH deep and whose strings are Unicode text."""
  if not body.strip():
    raise errors.invalid_argument('JSON Parse error: The document is empty')
  try:
    doc = json.loads(body)
  except (ValueError, RecursionError) as e:
    raise errors.invalid_argument(f'JSON Parse error: {e}') from None
  if not isinstance(doc, dict):
    raise errors.invalid_argument(f'JSON Value: {_debug(doc)} Is not object')
  _check_depth(doc)
  if _SURROGATE_ESCAPE.search(body):
    # Python's decoder lets an unpaired surrogate through; it is no character
    # and cannot become a protobuf string. RapidJSON, TF Serving's parser,
    # refuses it with these words.
    try:
      json.dumps(doc, ensure_ascii=False).encode('utf-8')
    except UnicodeEncodeError:
      raise errors.invalid_argument(
          'JSON Parse error: The surrogate pair in string is invalid.') from None
  return doc


def _check_depth(doc: Any) -> None:
  """INVALID_ARGUMENT if arrays and objects nest deeper than MAX_JSON_DEPTH;
  without recursion, so that no document can exhaust the stack here."""
  level, depth = [doc], 1
  while level:
    if depth > MAX_JSON_DEPTH:
      raise errors.invalid_argument(
          f'JSON Parse error: arrays and objects nest deeper than '
          f'{MAX_JSON_DEPTH} levels')
    inner = []
    for value in level:
      children = value.values() if isinstance(value, dict) else value
      inner.extend(c for c in children if isinstance(c, (list, dict)))
    level, depth = inner, depth + 1


def signature_name(doc: Mapping[str, Any]) -> str:
  name = doc.get('signature_name', '')
  if not isinstance(name, str):
    raise errors.invalid_argument(
        f'JSON Value: {_debug(doc)} not formatted correctly. '
        "'signature_name' key must be a string value.")
  return name


# --- JSON value -> ndarray -------------------------------------------------
def _dense_shape(value: Any) -> List[int]:
  shape = []
  while isinstance(value, list):
    shape.append(len(value))
    if not value:
      break
    value = value[0]
  return shape


def _flatten(value: Any, shape: List[int], level: int, out: List[Any]) -> None:
  if not isinstance(value, list):
    if level != len(shape):
      raise errors.invalid_argument(
          f'JSON Value: {_debug(value)} found at incorrect level: {level + 1} '
          f'in the JSON DOM. Expected at level: {len(shape)}')
    out.append(value)
    return
  if level >= len(shape):
    raise errors.invalid_argument(
        f'Encountered list at unexpected level: {level} expected < {len(shape)}')
  if len(value) != shape[level]:
    raise errors.invalid_argument(
        f'Encountered list at unexpected size: {len(value)} at level: {level} '
        f'expected size: {shape[level]}')
  for item in value:
    _flatten(item, shape, level + 1, out)


def _type_error(value: Any, dtype: tf.DType) -> errors.ServingError:
  return errors.invalid_argument(
      f'JSON Value: {_debug(value)} Type: {_json_type(value)} is not of '
      f'expected type: {dtype.name}')


def to_ndarray(value: Any, dtype: tf.DType) -> np.ndarray:
  """A dense tensor of `dtype` from a (nested) JSON list, checked like TF Serving."""
  shape = _dense_shape(value)
  if dtype != tf.string and isinstance(value, list):
    # Fast path: numpy reads rectangular numeric lists directly.
    try:
      array = np.asarray(value)
    except ValueError:  # Ragged: the slow path names the offending list.
      array = None
    if array is not None and list(array.shape) == shape and (
        (dtype.is_floating and array.dtype.kind in 'iuf') or
        (dtype.is_integer and array.dtype.kind in 'iu') or
        (dtype == tf.bool and array.dtype.kind == 'b')):
      return array.astype(dtype.as_numpy_dtype, copy=False)
  flat: List[Any] = []
  _flatten(value, shape, 0, flat)
  if dtype == tf.string:
    strings = np.empty(len(flat), dtype=object)
    for i, item in enumerate(flat):
      if isinstance(item, str):
        strings[i] = item.encode('utf-8')
      elif _is_b64(item):
        strings[i] = _decode_b64(item)
      elif isinstance(item, dict):
        raise errors.invalid_argument(
            f'JSON Value: {_debug(item)} not formatted correctly for base64 data')
      else:
        raise _type_error(item, dtype)
    return strings.reshape(shape)
  for item in flat:
    ok = (isinstance(item, bool) if dtype == tf.bool else
          isinstance(item, (int, float)) and not isinstance(item, bool) and
          (dtype.is_floating or isinstance(item, int)))
    if not ok:
      raise _type_error(item, dtype)
  try:
    return np.array(flat, dtype=dtype.as_numpy_dtype).reshape(shape)
  except (OverflowError, TypeError, ValueError) as e:
    raise errors.invalid_argument(
        f'values do not fit {dtype.name}: {e}') from None


# --- predict requests ---------------------------------------------------------
def predict_layout(doc: Mapping[str, Any]) -> str:
  """ROW (`instances`) or COLUMNAR (`inputs`): how a predict request document
  holds its inputs, and so how the answer holds the outputs."""
  has_instances, has_inputs = 'instances' in doc, 'inputs' in doc
  if has_instances and has_inputs:
    raise errors.invalid_argument(
        "Not formatted correctly expecting only one of 'inputs' or "
        "'instances' keys to exist")
  if has_instances:
    return ROW
  if has_inputs:
    return COLUMNAR
  raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


def predict_inputs(doc: Mapping[str, Any], input_dtypes: Mapping[str, tf.DType]
                   ) -> Dict[str, np.ndarray]:
  """The inputs by name of a predict request document."""
  if predict_layout(doc) == ROW:
    return _row_inputs(doc['instances'], input_dtypes)
  return _columnar_inputs(doc['inputs'], input_dtypes)


def _row_inputs(instances: Any, input_dtypes: Mapping[str, tf.DType]
                ) -> Dict[str, np.ndarray]:
  if not isinstance(instances, list):
    raise errors.invalid_argument("Expecting 'instances' to be an list/array")
  if not instances:
    raise errors.invalid_argument("No values in 'instances' array")
  names = sorted(input_dtypes)
  as_objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
  if not as_objects and len(names) > 1:
    raise errors.invalid_argument(
        'instances is a plain list, but expecting list of objects as multiple '
        f'input tensors required as per tensorinfo_map: {",".join(names)}')
  rows: Dict[str, List[np.ndarray]] = {name: [] for name in names}
  for index, item in enumerate(instances):
    is_object = isinstance(item, dict) and not _is_b64(item)
    if as_objects != is_object:
      raise errors.invalid_argument(
          f'Expecting {"object" if as_objects else "value/list"} but got '
          f'{"object" if is_object else "list"} at item {index} of input list')
    values = item if as_objects else {names[0]: item}
    if as_objects and set(values) != set(names):
      raise errors.invalid_argument(
          f"Failed to process element: {index} of 'instances' list. JSON "
          f'object: {_debug(item)} keys must be equal to: {",".join(names)}')
    for name in names:
      try:
        array = to_ndarray(values[name], input_dtypes[name])
      except errors.ServingError as e:
        raise errors.invalid_argument(
            f"Failed to process element: {index} key: {name} of 'instances' "
            f'list. Error: {e.message}') from None
      if rows[name] and array.shape != rows[name][0].shape:
        raise errors.invalid_argument(
            f'Expecting shape {list(rows[name][0].shape)} but got: '
            f'{list(array.shape)} (element {index} of {name!r})')
      rows[name].append(array)
  return {name: np.stack(arrays) for name, arrays in rows.items()}


def _columnar_inputs(inputs: Any, input_dtypes: Mapping[str, tf.DType]
                     ) -> Dict[str, np.ndarray]:
  names = sorted(input_dtypes)
  if not isinstance(inputs, dict) or _is_b64(inputs):
    if len(names) > 1:
      raise errors.invalid_argument(
          'inputs is a plain value/list, but expecting an object as multiple '
          f'input tensors required as per tensorinfo_map: {",".join(names)}')
    return {names[0]: to_ndarray(inputs, input_dtypes[names[0]])}
  result = {}
  for name in names:
    if name not in inputs:
      raise errors.invalid_argument(
          f"Missing named input: {name} in 'inputs' object. Expected inputs: "
          f'{",".join(names)}')
    result[name] = to_ndarray(inputs[name], input_dtypes[name])
  return result


# --- predict responses --------------------------------------------------------
def _json_values(name: str, array: np.ndarray) -> Any:
  if array.dtype == np.float32:
    # Shortest decimal that reads back as the same float32, as TF Serving
    # writes floats (0.1, not 0.10000000149011612).
    return array.astype(str).astype(np.float64).tolist()
  if array.dtype.kind in 'OS':
    as_b64 = name.endswith('_bytes')
    flat = []
    for item in array.reshape(-1):
      item = item if isinstance(item, bytes) else str(item).encode('utf-8')
      text = None
      if not as_b64:
        try:
          text = item.decode('utf-8')
        except UnicodeDecodeError:
          pass
      flat.append(text if text is not None else
                  {_B64: base64.b64encode(item).decode('ascii')})
    values = np.empty(len(flat), dtype=object)
    values[:] = flat
    return values.reshape(array.shape).tolist()
  return array.tolist()


def predict_response(outputs: Mapping[str, np.ndarray], layout: str
                     ) -> Dict[str, Any]:
  """{"predictions": ...} for ROW requests, {"outputs": ...} for COLUMNAR ones."""
  names = sorted(outputs)
  if layout == COLUMNAR:
    if len(names) == 1:
      return {'outputs': _json_values(names[0], outputs[names[0]])}
    return {'outputs': {n: _json_values(n, outputs[n]) for n in names}}
  batch = None
  for name in names:
    if outputs[name].ndim == 0:
      raise errors.invalid_argument(f'Tensor name: {name} has no shape information')
    if batch is not None and outputs[name].shape[0] != batch:
      raise errors.invalid_argument(
          f'Tensor name: {name} has inconsistent batch size: '
          f'{outputs[name].shape[0]} expecting: {batch}')
    batch = outputs[name].shape[0]
  values = {n: _json_values(n, outputs[n]) for n in names}
  if len(names) == 1:
    return {'predictions': values[names[0]]}
  return {'predictions': [{n: values[n][i] for n in names}
                          for i in range(batch)]}


# --- classify -----------------------------------------------------------------
def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature):
  kind = feature.WhichOneof('kind')

  def need(wanted):
    if kind not in (None, wanted):
      raise errors.invalid_argument(
          f'Unexpected element type in feature: {name} expecting type: '
          f'{kind.replace("_list", "")}')

  if isinstance(value, bool):
    need('int64_list')
    feature.int64_list.value.append(int(value))
  elif isinstance(value, int):
    need('int64_list')
    if not -(1 << 63) <= value < (1 << 63):
      raise errors.invalid_argument(
          f'Feature: {name} has an element outside int64: {value}')
    feature.int64_list.value.append(value)
  elif isinstance(value, float):
    need('float_list')
    feature.float_list.value.append(value)
  elif isinstance(value, str):
    need('bytes_list')
    feature.bytes_list.value.append(value.encode('utf-8'))
  elif _is_b64(value):
    need('bytes_list')
    feature.bytes_list.value.append(_decode_b64(value))
  else:
    raise errors.invalid_argument(
        f'Feature: {name} has element with unexpected JSON type: '
        f'{_json_type(value)}')


def _example(value: Any) -> example_pb2.Example:
  if not isinstance(value, dict):
    raise errors.invalid_argument(
        f'Example must be JSON object but got JSON {_json_type(value)}')
  example = example_pb2.Example()
  for name, content in value.items():
    feature = example.features.feature[name]
    for item in content if isinstance(content, list) else [content]:
      _add_feature_value(item, name, feature)
  return example


def fill_classification_request(doc: Mapping[str, Any], request) -> None:
  """Fills signature name and input of a ClassificationRequest or
  RegressionRequest from a classify/regress document (json_tensor.cc
  FillClassifyRegressRequestFromJson, which says "classify" for both)."""
  request.model_spec.signature_name = signature_name(doc)
  if 'examples' not in doc:
    raise errors.invalid_argument(
        "When method is classify, key 'examples' is expected and was not found")
  examples = doc['examples']
  if not isinstance(examples, list):
    raise errors.invalid_argument("Expecting 'examples' value to be an list/array")
  if not examples:
    raise errors.invalid_argument("'examples' value is an empty array")
  if 'context' in doc:
    with_context = request.input.example_list_with_context
    with_context.context.CopyFrom(_example(doc['context']))
    target = with_context.examples
  else:
    target = request.input.example_list.examples
  for value in examples:
    target.add().CopyFrom(_example(value))


def classification_response(
    result: classification_pb2.ClassificationResult) -> Dict[str, Any]:
  """{"results": [[[label, score], ...] per example]}, TF Serving's layout."""
  return {'results': [
      [[c.label, float(np.float32(c.score).astype(str))] for c in item.classes]
      for item in result.classifications]}


def regression_response(
    result: regression_pb2.RegressionResult) -> Dict[str, Any]:
  """{"results": [value per example]} (json_tensor.cc MakeJsonFromRegressionResult)."""
  if not result.regressions:
    raise errors.invalid_argument(
        'Cannot convert empty RegressionResults to JSON')
  return {'results': [float(np.float32(r.value).astype(str))
                      for r in result.regressions]}


def dumps(document: Mapping[str, Any]) -> bytes:
  return json.dumps(document, allow_nan=True).encode('utf-8')
