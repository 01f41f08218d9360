"""Random distortion of the digits, in one resampling (training only).

Keras' RandomRotation, RandomZoom and RandomTranslation each resample the image
with bilinear interpolation, so chaining the three (the `reference` recipe) blurs
every training digit three times, while the test digits are never blurred. This
layer draws the same three distortions, composes them into one affine map and
resamples once: sharper training images, and a third of the resampling work.
That work saved is what lets each network of the ensemble draw its own
distortion of every image (model.py), at the cost that one shared chain had.

With `elastic` above 0 the affine map is followed by an elastic distortion: a
smooth random displacement of every pixel, as Simard et al. (2003) used on
MNIST, which bends strokes the way hands do and an affine map cannot. Both are
then one dense map, resampled once as well.

At inference the layer is the identity, as Keras' own augmentation layers are.
"""

import math
from typing import Optional

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


def affine_warp(images, transforms):
  """images [N, H, W, C] under `transforms` ([N, 8] of affine_transforms), with
  TensorFlow's own kernel: bilinear, 0 beyond the edges."""
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
      fill_value=0.0, interpolation='BILINEAR', fill_mode='CONSTANT')


# The elastic displacement is drawn on a coarse grid of control points and
# interpolated smoothly between them: neighbouring pixels move together, over
# about a third of the digit (Simard's Gaussian smoothing of sigma 4 pixels).
_ELASTIC_GRID = 4


def warp_bilinear(images, source_x, source_y):
  """images [N, H, W, C] read at the points (source_x, source_y) [N, H', W'],
  in pixels, with bilinear interpolation and 0 beyond the edges: what
  ImageProjectiveTransformV3 does for an affine map, for any map."""
  shape = tf.shape(images)
  n, height, width, channels = shape[0], shape[1], shape[2], shape[3]
  # A frame of zeros one pixel wide: every point at most one pixel outside the
  # image reads it, and points further out are moved onto it.
  padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
  x = tf.clip_by_value(source_x + 1.0, 0.0, tf.cast(width + 1, tf.float32))
  y = tf.clip_by_value(source_y + 1.0, 0.0, tf.cast(height + 1, tf.float32))
  x0, y0 = tf.floor(x), tf.floor(y)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
  x1 = tf.minimum(x0 + 1, width + 1)
  y1 = tf.minimum(y0 + 1, height + 1)
  flat = tf.reshape(padded, [n, -1, channels])

  def read(yi, xi):
    return tf.gather(flat, yi * (width + 2) + xi, batch_dims=1)

  top = read(y0, x0) * (1.0 - fx) + read(y0, x1) * fx
  bottom = read(y1, x0) * (1.0 - fx) + read(y1, x1) * fx
  return top * (1.0 - fy) + bottom * fy


def affine_source_points(transforms, height, width):
  """The input point ([N, H, W] x, y) each output pixel reads under `transforms`
  ([N, 8] of affine_transforms)."""
  ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32),
                       tf.range(width, dtype=tf.float32), indexing='ij')
  a0, a1, a2, b0, b1, b2 = [tf.reshape(t, [-1, 1, 1])
                            for t in tf.unstack(transforms[:, :6], axis=1)]
  return a0 * xs + a1 * ys + a2, b0 * xs + b1 * ys + b2


class RandomDistortion(keras.__internal__.layers.BaseRandomLayer):
  """Rotates by up to `rotation_degrees`, scales by up to 1 +- `zoom` and shifts
  by up to `shift` of the image size in each direction, uniformly and
  independently per image; then, if `elastic` > 0, moves the pixels by a smooth
  random field whose displacement has a standard deviation of `elastic` pixels
  at its control points. The area uncovered is filled with 0 (background).

  The affine ranges mean what they mean for Keras' RandomRotation(degrees / 360),
  RandomZoom(zoom) and RandomTranslation(shift, shift).
  """

  def __init__(self, rotation_degrees: float, zoom: float, shift: float,
               elastic: float = 0.0, seed: Optional[int] = None, **kwargs):
    # float32 whatever the mixed-precision policy: the resampling is cheap next
    # to the convolutions, and 16-bit pixel coordinates would be coarse.
    kwargs.setdefault('dtype', 'float32')
    super().__init__(seed=seed, **kwargs)
    self.rotation_degrees = rotation_degrees
    self.zoom = zoom
    self.shift = shift
    self.elastic = elastic
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
    if not self.elastic:
      return affine_warp(images, transforms)
    source_x, source_y = affine_source_points(transforms, shape[1], shape[2])
    field = self._random_generator.random_normal(
        [batch, _ELASTIC_GRID, _ELASTIC_GRID, 2], stddev=self.elastic)
    field = tf.image.resize(field, shape[1:3], method='bicubic')
    return warp_bilinear(images, source_x + field[..., 0],
                         source_y + field[..., 1])

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), 'rotation_degrees': self.rotation_degrees,
            'zoom': self.zoom, 'shift': self.shift, 'elastic': self.elastic,
            'seed': self.seed}
