"""Random affine distortion of the digits, in one resampling (training only).

Keras' RandomRotation, RandomZoom and RandomTranslation each resample the image
with bilinear interpolation, so chaining the three (the `reference` recipe) blurs
every training digit three times, while the test digits are never blurred. This
layer draws the same three distortions, composes them into one affine map and
resamples once: sharper training images, and a third of the resampling work.
That work saved is what lets each network of the ensemble draw its own
distortion of every image (model.py), at the cost that one shared chain had.

At inference the layer is the identity, as Keras' own augmentation layers are.
"""

import math

import tensorflow as tf
import tf_keras as keras


def affine_transforms(angle, scale, dx, dy, height, width):
  """[N, 8] transforms for ImageProjectiveTransformV3: each maps an output pixel
  to the input point it reads. Rotation by `angle` (radians) and scaling by
  `scale` about the image centre, then a shift of the result by (dx, dy) pixels,
  as Keras' chain applies RandomTranslation last. A scale above 1 reads a larger
  area, so the digit comes out smaller; positive dx, dy move it right and down.

  Input point = M (output point - shift - centre) + centre, M = scale x R(angle).
  """
  cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
  cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
  zeros = tf.zeros_like(cos)
  return tf.stack([
      cos, -sin, cx - cos * (cx + dx) + sin * (cy + dy),
      sin, cos, cy - sin * (cx + dx) - cos * (cy + dy),
      zeros, zeros], axis=1)


class RandomAffine(keras.__internal__.layers.BaseRandomLayer):
  """Rotates by up to `rotation_degrees`, scales by up to 1 +- `zoom` and shifts
  by up to `shift` of the image size in each direction, uniformly and
  independently per image; the area uncovered is filled with 0 (background).

  The ranges mean what they mean for Keras' RandomRotation(degrees / 360),
  RandomZoom(zoom) and RandomTranslation(shift, shift).
  """

  def __init__(self, rotation_degrees: float, zoom: float, shift: float,
               seed=None, **kwargs):
    # float32 whatever the mixed-precision policy: the resampling is cheap next
    # to the convolutions, and 16-bit pixel coordinates would be coarse.
    kwargs.setdefault('dtype', 'float32')
    super().__init__(seed=seed, **kwargs)
    self.rotation_degrees = rotation_degrees
    self.zoom = zoom
    self.shift = shift
    self.seed = seed

  def call(self, images, training=None):
    if not training:
      return images
    return self._distort(tf.convert_to_tensor(images, self.compute_dtype))

  def _distort(self, images):
    shape = tf.shape(images)
    batch = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)

    def uniform(limit):
      return self._random_generator.random_uniform([batch], -limit, limit)

    transforms = affine_transforms(
        angle=uniform(math.radians(self.rotation_degrees)),
        scale=1.0 + uniform(self.zoom),
        dx=uniform(self.shift) * width, dy=uniform(self.shift) * height,
        height=height, width=width)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3],
        fill_value=0.0, interpolation='BILINEAR', fill_mode='CONSTANT')

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), 'rotation_degrees': self.rotation_degrees,
            'zoom': self.zoom, 'shift': self.shift, 'seed': self.seed}
