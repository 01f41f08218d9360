"""TensorProto <-> numpy, the way TF Serving reads requests and writes responses.

Reading accepts everything `tf.make_tensor_proto` and other clients produce (packed
`tensor_content` or the typed `*_val` fields), but first checks the declared shape:
a proto claiming [10^9, 784] with one value would otherwise be expanded into
terabytes and take the server down.

Writing fills the typed fields (`float_val`, `int64_val`, `string_val`, ...), as TF
Serving does (Tensor::AsProtoField): clients such as TF Serving's own MNIST tutorial
client read `outputs['scores'].float_val` directly.

The tf.Examples of a Classify or Regress request (an Input proto) become one
string tensor of serialized examples, as TF Serving feeds them (util.cc,
InputToSerializedExampleTensor); warm-up replays its records the same way.
"""

import functools
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from serving.core import errors

_KNOWN_DATATYPES = frozenset(types_pb2.DataType.values())

# Typed field of TensorProto for each numpy dtype, as TF's AsProtoField fills them.
_TYPED_FIELDS = {
    np.dtype(np.float32): 'float_val',
    np.dtype(np.float64): 'double_val',
    np.dtype(np.int32): 'int_val',
    np.dtype(np.int16): 'int_val',
    np.dtype(np.int8): 'int_val',
    np.dtype(np.uint8): 'int_val',
    np.dtype(np.uint16): 'int_val',
    np.dtype(np.int64): 'int64_val',
    np.dtype(np.uint32): 'uint32_val',
    np.dtype(np.uint64): 'uint64_val',
    np.dtype(np.bool_): 'bool_val',
}


@functools.lru_cache(maxsize=None)
def _numpy_dtype(datatype: int) -> np.dtype:
  return np.dtype(tf.dtypes.as_dtype(datatype).as_numpy_dtype)


@functools.lru_cache(maxsize=None)
def datatype(dtype: np.dtype) -> int:
  if dtype.kind in ('O', 'S', 'U'):
    return types_pb2.DT_STRING
  return tf.dtypes.as_dtype(dtype).as_datatype_enum


def dtype_name(datatype: int) -> str:
  """DT_FLOAT, DT_STRING, ...: the names TF Serving's messages use."""
  try:
    return types_pb2.DataType.Name(datatype)
  except ValueError:
    return f'DataType({datatype})'


def to_ndarray(name: str, proto: tensor_pb2.TensorProto,
               max_elements: int) -> np.ndarray:
  """The numpy array of request tensor `name`; INVALID_ARGUMENT if it is malformed."""
  if proto.dtype == types_pb2.DT_INVALID or proto.dtype not in _KNOWN_DATATYPES:
    raise errors.invalid_argument(
        f'input tensor {name!r} has no valid dtype ({proto.dtype})')
  if proto.tensor_shape.unknown_rank:
    raise errors.invalid_argument(f'input tensor {name!r} has unknown rank')
  shape = tuple(d.size for d in proto.tensor_shape.dim)
  if any(size < 0 for size in shape):
    raise errors.invalid_argument(
        f'input tensor {name!r} has a negative dimension in shape {list(shape)}')
  count = 1
  for size in shape:
    count *= size
  if count > max_elements:
    raise errors.invalid_argument(
        f'input tensor {name!r} of shape {list(shape)} has {count} elements, '
        f'more than this server accepts ({max_elements})')
  try:
    if proto.dtype == types_pb2.DT_STRING:
      values = proto.string_val
      if len(values) == count:
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    elif proto.tensor_content:
      dtype = _numpy_dtype(proto.dtype)
      if len(proto.tensor_content) != count * dtype.itemsize:
        raise errors.invalid_argument(
            f'input tensor {name!r}: tensor_content holds '
            f'{len(proto.tensor_content)} bytes, shape {list(shape)} of '
            f'{dtype_name(proto.dtype)} needs {count * dtype.itemsize}')
      return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    elif proto.dtype == types_pb2.DT_FLOAT and len(proto.float_val) == count:
      return np.array(proto.float_val, dtype=np.float32).reshape(shape)
    # Everything else (fill from one value, other dtypes) as TensorFlow reads it.
    return tf.make_ndarray(proto)
  except errors.ServingError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise errors.invalid_argument(
        f'input tensor {name!r} is not a valid TensorProto: {e}') from e


def to_ndarrays(protos: Mapping[str, tensor_pb2.TensorProto],
                max_elements: int) -> Dict[str, np.ndarray]:
  return {name: to_ndarray(name, proto, max_elements)
          for name, proto in protos.items()}


def fill_proto(array: np.ndarray, proto: tensor_pb2.TensorProto,
               as_tensor_content: bool = False) -> None:
  """Writes `array` into `proto` with typed value fields (TF's AsProtoField), or,
  as_tensor_content, as raw bytes (AsProtoTensorContent; TF Serving's
  --enable_serialization_as_tensor_content; strings keep string_val)."""
  array = np.asarray(array)
  proto.dtype = datatype(array.dtype)
  for size in array.shape:
    proto.tensor_shape.dim.add(size=size)
  flat = array.reshape(-1)
  if as_tensor_content and proto.dtype != types_pb2.DT_STRING:
    proto.tensor_content = np.ascontiguousarray(flat).astype(
        flat.dtype.newbyteorder('<'), copy=False).tobytes()
    return
  if proto.dtype == types_pb2.DT_STRING:
    proto.string_val.extend(
        v if isinstance(v, bytes) else str(v).encode('utf-8') for v in flat)
    return
  field = _TYPED_FIELDS.get(array.dtype)
  if field is not None:
    getattr(proto, field).extend(flat.tolist())
  elif array.dtype == np.float16:
    proto.half_val.extend(flat.view(np.uint16).tolist())
  else:  # Complex, bfloat16 and other rare dtypes: let TensorFlow pack them.
    proto.CopyFrom(tf.make_tensor_proto(array))


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
