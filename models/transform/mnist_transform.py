"""Transform's module file: raw tf.Example features -> what the CNN reads.

TFT traces `preprocessing_fn` into a graph that is applied to the training data here
and embedded, unchanged, in the exported model, so a client sends the raw 784 pixels
and the server scales them exactly as training did.

This folder holds module files only: TFX hashes every file beside a module file to
decide whether a cached Transform is still valid.
"""

import tensorflow as tf

from models import features


def preprocessing_fn(inputs):
  """Scales pixels to float32 in [0, 1] shaped [28, 28, 1]; passes the label."""
  pixels = tf.cast(inputs[features.IMAGE_KEY], tf.float32) / 255.0
  image = tf.reshape(
      pixels, [-1, features.IMAGE_ROWS, features.IMAGE_COLS, 1])
  return {
      features.TRANSFORMED_IMAGE_KEY: image,
      features.TRANSFORMED_LABEL_KEY: inputs[features.LABEL_KEY],
  }
