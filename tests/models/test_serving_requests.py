"""Requests built from tf.Examples (models/serving_requests.py), the ones the
warm-up writer, the InfraValidator and the client send."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2

from models import serving_contract as contract
from models import serving_requests


def test_examples_carry_the_feature_contract():
  images = np.arange(784 * 2).reshape(2, 784) % 256
  [first, _] = serving_requests.encode_examples(images)
  example = example_pb2.Example.FromString(first)
  assert list(example.features.feature['image'].int64_list.value) == list(
      images[0])
  with pytest.raises(ValueError):
    serving_requests.encode_examples(np.zeros((1, 783)))
  with pytest.raises(ValueError):
    serving_requests.encode_examples(np.full((1, 784), 256))


def test_digit_inputs_for_both_predict_signatures():
  images = np.arange(784 * 3).reshape(3, 784) % 256
  records = serving_requests.encode_examples(images)
  floats = serving_requests.digit_inputs(contract.IMAGES_SIGNATURE, records)
  np.testing.assert_array_equal(floats[contract.IMAGES_INPUT],
                                serving_requests.unit_floats(images))
  examples = serving_requests.digit_inputs(contract.DEFAULT_SIGNATURE, records)
  assert list(examples[contract.EXAMPLES_INPUT]) == records
  with pytest.raises(ValueError, match='signature_name'):
    serving_requests.digit_inputs(contract.CLASSIFY_SIGNATURE, records)
  with pytest.raises(ValueError, match='783 values'):
    serving_requests.pixels_of_examples([_example_with(783)])


def _example_with(values: int) -> bytes:
  example = example_pb2.Example()
  example.features.feature['image'].int64_list.value.extend([0] * values)
  return example.SerializeToString()


def test_requests_name_model_signature_and_version():
  records = serving_requests.encode_examples(np.zeros((2, 784), np.uint8))
  request = serving_requests.predict_request(
      'mnist', contract.DEFAULT_SIGNATURE,
      serving_requests.digit_inputs(contract.DEFAULT_SIGNATURE, records),
      version=3)
  assert (request.model_spec.name, request.model_spec.signature_name,
          request.model_spec.version.value) == (
              'mnist', contract.DEFAULT_SIGNATURE, 3)
  tensor = request.inputs[contract.EXAMPLES_INPUT]
  assert tensor.dtype == tf.string.as_datatype_enum
  assert list(tf.make_ndarray(tensor)) == records
  classify = serving_requests.classification_request(
      'mnist', contract.CLASSIFY_SIGNATURE, records, version_label='stable')
  assert classify.model_spec.version_label == 'stable'
  assert [e.SerializeToString() for e in
          classify.input.example_list.examples] == records
  regress = serving_requests.regression_request('m', 'regress', records[:1])
  assert not regress.model_spec.HasField('version')
  assert len(regress.input.example_list.examples) == 1
