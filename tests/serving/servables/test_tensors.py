"""TensorProtos to and from numpy (serving/servables/tensors.py), as TF Serving
reads and writes them."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving.core import errors
from serving.servables import tensors


@pytest.mark.parametrize('value', [
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.arange(6, dtype=np.int64).reshape(3, 2),
    np.array([True, False]),
    np.array([b'a', b'\xff\x00'], dtype=object),
    np.arange(4, dtype=np.float16),
    np.arange(4, dtype=np.uint8),
])
def test_tensor_protos_round_trip(value):
  packed = tf.make_tensor_proto(value)  # tensor_content, as clients send.
  np.testing.assert_array_equal(tensors.to_ndarray('x', packed, 100), value)
  typed = tensor_pb2.TensorProto()
  tensors.fill_proto(value, typed)
  assert not typed.tensor_content  # Typed fields, as TF Serving answers.
  np.testing.assert_array_equal(tf.make_ndarray(typed), value)
  assert tf.make_ndarray(typed).dtype == value.dtype


def test_scores_travel_in_float_val():
  proto = tensor_pb2.TensorProto()
  tensors.fill_proto(np.array([[0.25, 0.75]], np.float32), proto)
  assert list(proto.float_val) == [0.25, 0.75]
  assert [d.size for d in proto.tensor_shape.dim] == [1, 2]


def test_malformed_tensor_protos_are_invalid_arguments():
  proto = tf.make_tensor_proto(np.zeros((2, 2), np.float32))
  proto.tensor_shape.dim[0].size = -1
  with pytest.raises(errors.ServingError, match='negative'):
    tensors.to_ndarray('x', proto, 100)
  proto.tensor_shape.dim[0].size = 1000
  with pytest.raises(errors.ServingError, match='elements'):
    tensors.to_ndarray('x', proto, 100)
  proto.tensor_shape.dim[0].size = 3
  with pytest.raises(errors.ServingError, match='bytes'):
    tensors.to_ndarray('x', proto, 100)
  proto.dtype = 0
  with pytest.raises(errors.ServingError, match='dtype'):
    tensors.to_ndarray('x', proto, 100)

