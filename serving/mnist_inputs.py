"""What a client sends for a digit, from pixels or an image file.

The pushed model takes either serialized tf.Examples (`serving_default`, the
pipeline's own feature contract in models/features.py: `image`, 784 int64 pixels in
0-255) or float pixels in [0, 1] (`predict_images`, TF Serving's MNIST tutorial
contract). Both start from the same uint8 [N, 784] array, which callers bring:
`load_image_file` reads a picture; `mnist-tfx predict` reads the IDX test set
itself (pipeline/cli/serving_commands.py), as serving/ imports nothing but models/.
"""

from typing import List

import numpy as np

from models import features


def encode_examples(images: np.ndarray) -> List[bytes]:
  """Serialized tf.Examples, one per row of uint8 `images` [N, 784]."""
  return [features.example(row.tolist()).SerializeToString()
          for row in as_pixels(images)]


def unit_floats(images: np.ndarray) -> np.ndarray:
  """float32 [N, 784] in [0, 1], the `predict_images` input."""
  return as_pixels(images).astype(np.float32) / 255.0


def load_image_file(path: str) -> np.ndarray:
  """A PNG/JPEG (or any format Pillow reads) of one digit as uint8 [784].

  MNIST digits are light strokes on a dark background, 28x28. The picture is
  converted to grayscale, inverted when its border is mostly light (a digit drawn
  dark on white paper), and resized to 28x28.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as picture:
    gray = picture.convert('L')
    if gray.size != (features.IMAGE_COLS, features.IMAGE_ROWS):
      gray = gray.resize((features.IMAGE_COLS, features.IMAGE_ROWS),
                         Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.uint8)
  border = np.concatenate(
      [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
  if border.mean() > 127:
    pixels = 255 - pixels
  return pixels.reshape(features.IMAGE_PIXELS)


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
