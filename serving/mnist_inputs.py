"""What a client sends for a digit: pixels from image files or the IDX test set.

The pushed model takes either serialized tf.Examples (`serving_default`, the
pipeline's own feature contract in models/features.py: `image`, 784 int64 pixels in
0-255) or float pixels in [0, 1] (`predict_images`, TF Serving's MNIST tutorial
contract). Both start from the same uint8 [N, 784] array built here.
"""

from typing import List, Sequence, Tuple

import numpy as np

from models import features


def encode_examples(images: np.ndarray) -> List[bytes]:
  """Serialized tf.Examples, one per row of uint8 `images` [N, 784]."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  images = as_pixels(images)
  serialized = []
  for row in images:
    example = example_pb2.Example()
    example.features.feature[features.IMAGE_KEY].int64_list.value.extend(
        row.tolist())
    serialized.append(example.SerializeToString())
  return serialized


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


def load_test_images(data_dir: str,
                     indexes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 784], labels [N]) of the IDX test set at `indexes`."""
  from components import idx  # pylint: disable=g-import-not-at-top
  images, labels = idx.load(data_dir, 'test')
  bad = [i for i in indexes if not 0 <= i < len(images)]
  if bad:
    raise IndexError(
        f'test set index {bad[0]} out of range: {data_dir} holds '
        f'{len(images)} test images')
  indexes = list(indexes)
  return images[indexes], labels[indexes]


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
