"""The feature contract shared by ExampleGen, the schema, Transform, Trainer and serving.

ExampleGen writes each MNIST digit as a tf.Example with two int64 features:
  image: the 28x28 pixels, row-major, as 784 integers in 0-255;
  label: the digit, 0-9.
int64 rather than one 784-byte string: the schema can then state the length and the
0-255 domain of every pixel, TFDV computes real pixel statistics, and a client builds
the example without knowing a byte layout.

`example` builds one: the warm-up requests, the clients and the tests call it, and
ExampleGen's vectorized encoder writes the same examples a chunk at a time.
"""

from typing import Optional, Sequence

IMAGE_KEY = 'image'
LABEL_KEY = 'label'
IMAGE_ROWS = 28
IMAGE_COLS = 28
IMAGE_PIXELS = IMAGE_ROWS * IMAGE_COLS
NUM_CLASSES = 10

# Names after Transform (what the Keras model reads).
TRANSFORMED_IMAGE_KEY = 'image_xf'
TRANSFORMED_LABEL_KEY = 'label_xf'


def example(pixels: Sequence[int], label: Optional[int] = None):
  """One digit as a tf.train.Example of this contract: `pixels` its 784 values in
  0-255 (ints), `label` the digit, or None for a request, which carries none."""
  # TensorFlow only here: the CLI and the clients import this file for its names.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  feature = {IMAGE_KEY: tf.train.Feature(
      int64_list=tf.train.Int64List(value=pixels))}
  if label is not None:
    feature[LABEL_KEY] = tf.train.Feature(
        int64_list=tf.train.Int64List(value=[label]))
  return tf.train.Example(features=tf.train.Features(feature=feature))
