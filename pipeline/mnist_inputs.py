"""A picture of a digit as MNIST pixels, for `mnist-tfx predict`.

The client (client.py) sends uint8 pixels [N, 784]; `mnist-tfx predict` reads
them from the IDX test set (pipeline/cli/serving_commands.py) or from picture
files with `load_image_file`. The requests made of them are built in
models/serving_requests.py.
"""

import numpy as np

from models import features


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
