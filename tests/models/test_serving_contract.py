"""models/serving_contract.py spells TensorFlow's names.

(Its place is tests/models/test_serving_contract.py, beside the model tests, once
tests/models/ takes it.)
"""

import os

import tensorflow as tf
from tensorflow.python.saved_model import constants as saved_model_constants  # pylint: disable=g-direct-tensorflow-import

from models import serving_contract as contract


def test_the_contract_spells_tensorflows_names():
  """models/serving_contract.py keeps TensorFlow's values as plain strings."""
  assert (contract.SERVE_TAG, contract.DEFAULT_SIGNATURE) == (
      tf.saved_model.SERVING, tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY)
  assert (contract.PREDICT_METHOD, contract.CLASSIFY_METHOD,
          contract.REGRESS_METHOD) == (
              tf.saved_model.PREDICT_METHOD_NAME,
              tf.saved_model.CLASSIFY_METHOD_NAME,
              tf.saved_model.REGRESS_METHOD_NAME)
  assert (contract.CLASSIFY_INPUTS, contract.CLASSIFY_CLASSES,
          contract.CLASSIFY_SCORES) == (
              tf.saved_model.CLASSIFY_INPUTS,
              tf.saved_model.CLASSIFY_OUTPUT_CLASSES,
              tf.saved_model.CLASSIFY_OUTPUT_SCORES)
  assert (contract.REGRESS_INPUTS, contract.REGRESS_OUTPUTS) == (
      tf.saved_model.REGRESS_INPUTS, tf.saved_model.REGRESS_OUTPUTS)
  assert contract.INIT_OP_SIGNATURE == (
      saved_model_constants.INIT_OP_SIGNATURE_KEY)
  assert contract.WARMUP_FILE.split(os.sep)[0] == (
      saved_model_constants.EXTRA_ASSETS_DIRECTORY)

