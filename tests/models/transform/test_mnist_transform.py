"""The Transform module on known pixels."""

import numpy as np
import tensorflow as tf

from models import features
from models.transform import mnist_transform


def test_scales_pixels_to_unit_interval_and_shapes_for_the_cnn():
  pixels = np.zeros((2, 784), dtype=np.int64)
  pixels[0, 0] = 255     # top-left of the first image
  pixels[0, 783] = 51    # bottom-right
  pixels[1, 28] = 128    # first pixel of the second row
  outputs = mnist_transform.preprocessing_fn({
      features.IMAGE_KEY: tf.constant(pixels),
      features.LABEL_KEY: tf.constant([[7], [3]], dtype=tf.int64),
  })
  image = outputs[features.TRANSFORMED_IMAGE_KEY].numpy()
  assert image.dtype == np.float32 and image.shape == (2, 28, 28, 1)
  assert image[0, 0, 0, 0] == 1.0
  np.testing.assert_allclose(image[0, 27, 27, 0], 0.2)
  np.testing.assert_allclose(image[1, 1, 0, 0], 128 / 255)
  assert image.sum() == np.float32(1.0 + 0.2 + 128 / 255)
  np.testing.assert_array_equal(
      outputs[features.TRANSFORMED_LABEL_KEY].numpy(), [[7], [3]])
