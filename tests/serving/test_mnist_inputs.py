"""What a client sends for a digit (serving/mnist_inputs.py): image files as
MNIST pixels, pixels as tf.Examples of the feature contract."""

import numpy as np
import pytest
from PIL import Image

from serving import mnist_inputs


def test_image_files_become_mnist_pixels(tmp_path):
  # A dark "1" on white paper, 56x56: resized and inverted to MNIST's look.
  picture = np.full((56, 56), 255, np.uint8)
  picture[8:48, 26:30] = 0
  path = tmp_path / 'one.png'
  Image.fromarray(picture).save(path)
  pixels = mnist_inputs.load_image_file(str(path))
  assert pixels.shape == (784,) and pixels.dtype == np.uint8
  grid = pixels.reshape(28, 28)
  assert grid[0, 0] == 0 and grid[14, 14] > 200


def test_examples_carry_the_feature_contract():
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  images = np.arange(784 * 2).reshape(2, 784) % 256
  [first, _] = mnist_inputs.encode_examples(images)
  example = example_pb2.Example.FromString(first)
  assert list(example.features.feature['image'].int64_list.value) == list(
      images[0])
  with pytest.raises(ValueError):
    mnist_inputs.encode_examples(np.zeros((1, 783)))
  with pytest.raises(ValueError):
    mnist_inputs.encode_examples(np.full((1, 784), 256))

