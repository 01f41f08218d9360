"""A picture of a digit as MNIST pixels (pipeline/mnist_inputs.py)."""

import numpy as np
from PIL import Image

from pipeline import mnist_inputs


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

