"""JSON of TF Serving's REST API (serving/model_servers/json_codec.py): tensors
in and out, in row and columnar form, and the results of Regress."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import regression_pb2

from serving.core import errors
from serving.model_servers import json_codec


def test_json_tensors_follow_tf_serving_rules():
  assert json_codec.to_ndarray([[1, 2.5]], tf.float32).dtype == np.float32
  strings = json_codec.to_ndarray(['a', {'b64': 'AP8='}], tf.string)
  assert list(strings) == [b'a', b'\x00\xff']
  with pytest.raises(errors.ServingError, match='unexpected size'):
    json_codec.to_ndarray([[1, 2], [3]], tf.float32)
  with pytest.raises(errors.ServingError, match='not of expected type: int64'):
    json_codec.to_ndarray([1.5], tf.int64)
  with pytest.raises(errors.ServingError, match='base64'):
    json_codec.to_ndarray([{'b64': '***'}], tf.string)


def test_json_predict_response_layouts():
  outputs = {'scores': np.array([[0.1, 0.9]], np.float32),
             'classes': np.array([1])}
  assert json_codec.predict_response(outputs, json_codec.ROW) == {
      'predictions': [{'classes': 1, 'scores': [0.1, 0.9]}]}
  assert json_codec.predict_response(outputs, json_codec.COLUMNAR) == {
      'outputs': {'classes': [1], 'scores': [[0.1, 0.9]]}}
  assert json_codec.predict_response({'x_bytes': np.array([b'\x00'], object)},
                                     json_codec.ROW) == {
                                         'predictions': [{'b64': 'AA=='}]}



def test_empty_regression_result_has_no_json():
  with pytest.raises(errors.ServingError,
                     match='Cannot convert empty RegressionResults to JSON'):
    json_codec.regression_response(regression_pb2.RegressionResult())
  result = regression_pb2.RegressionResult()
  result.regressions.add().value = 0.1
  assert json_codec.regression_response(result) == {'results': [0.1]}

