"""The random distortion: the affine map's geometry and ranges, that it blurs less
than the chain of Keras layers it replaces, and the elastic warp."""

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.trainer import augmentation


def _apply(images, angle=0.0, scale=1.0, dx=0.0, dy=0.0):
  n, height, width = images.shape[:3]
  transforms = augmentation.affine_transforms(
      tf.fill([n], angle), tf.fill([n], scale), tf.fill([n], dx),
      tf.fill([n], dy), float(height), float(width))
  return augmentation.affine_warp(images, transforms).numpy()


def _digit_like(n=1):
  """A bright bar with a foot, off-centre: every symmetry would hide a wrong sign."""
  images = np.zeros((n, 28, 28, 1), np.float32)
  images[:, 6:20, 10:13] = 1.0
  images[:, 17:20, 13:18] = 1.0
  return images


def test_the_identity_map_leaves_the_image_as_it_is():
  images = _digit_like()
  np.testing.assert_allclose(_apply(images), images, atol=1e-6)


def test_whole_pixel_shifts_move_the_digit_right_and_down():
  images = _digit_like()
  shifted = _apply(images, dx=3.0, dy=2.0)
  np.testing.assert_allclose(shifted[:, 2:, 3:], images[:, :-2, :-3], atol=1e-6)
  assert shifted[:, :2].max() == 0 and shifted[:, :, :3].max() == 0


def test_a_quarter_turn_is_a_rotation_about_the_centre():
  images = _digit_like()
  turned = _apply(images, angle=math.pi / 2)
  # One of the two quarter turns, exactly: the centre of a 28x28 image is
  # between pixels, and a quarter turn about it maps pixels onto pixels.
  candidates = [np.rot90(images, k, axes=(1, 2)) for k in (1, 3)]
  assert min(np.abs(turned - c).max() for c in candidates) < 1e-5


def test_a_scale_above_one_makes_the_digit_smaller_about_the_centre():
  images = _digit_like()
  smaller = _apply(images, scale=1.25)
  assert 0 < smaller.sum() < images.sum()
  larger = _apply(images, scale=0.8)
  assert larger.sum() > images.sum()


def test_it_distorts_only_in_training_and_each_image_its_own_way():
  keras.utils.set_random_seed(0)
  layer = augmentation.RandomDistortion(10.0, 0.1, 0.1)
  images = _digit_like(16)
  np.testing.assert_array_equal(layer(images, training=False), images)
  distorted = layer(images, training=True).numpy()
  assert distorted.shape == images.shape
  assert distorted.dtype == np.float32
  assert not np.allclose(distorted[0], distorted[1], atol=1e-3)
  assert not np.allclose(distorted[0], images[0], atol=1e-3)


def test_distortions_stay_within_their_ranges():
  """Shifts of at most 10% move a centred dot by at most 2.8 pixels per axis (and
  rotation and zoom about the centre leave it where it is)."""
  keras.utils.set_random_seed(1)
  images = np.zeros((256, 28, 28, 1), np.float32)
  images[:, 13:15, 13:15] = 1.0
  distorted = augmentation.RandomDistortion(10.0, 0.1, 0.1)(images, training=True)
  rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing='ij')
  mass = distorted.numpy()[..., 0].sum(axis=(1, 2))
  row_centre = (distorted.numpy()[..., 0] * rows).sum(axis=(1, 2)) / mass
  col_centre = (distorted.numpy()[..., 0] * cols).sum(axis=(1, 2)) / mass
  for centre in (row_centre, col_centre):
    offset = centre - 13.5
    assert np.abs(offset).max() <= 2.8 + 0.2
    assert np.abs(offset).max() > 1.5  # the shifts do reach out
    assert abs(offset.mean()) < 0.4  # and go both ways


def test_one_resampling_keeps_the_digits_sharper_than_the_keras_chain():
  keras.utils.set_random_seed(2)
  images = _digit_like(64)
  affine = augmentation.RandomDistortion(10.0, 0.1, 0.1)(images, training=True)
  chain = keras.Sequential([
      keras.layers.RandomRotation(10.0 / 360.0, fill_mode='constant'),
      keras.layers.RandomZoom(0.1, fill_mode='constant'),
      keras.layers.RandomTranslation(0.1, 0.1, fill_mode='constant'),
  ])(images, training=True)
  # Each bilinear resampling averages neighbouring pixels: the stroke's
  # brightest pixels and its energy fade with each one.
  def saturated(x):
    return float((np.asarray(x) > 0.9).mean())
  assert saturated(affine) > 1.3 * saturated(chain)
  assert np.square(affine).sum() > np.square(chain).sum()


def test_it_resamples_in_float32_under_mixed_precision():
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    layer = augmentation.RandomDistortion(10.0, 0.1, 0.1)
    out = layer(_digit_like(2), training=True)
  finally:
    keras.mixed_precision.set_global_policy('float32')
  assert out.dtype == tf.float32


def test_the_dense_warp_reads_as_tensorflows_affine_kernel_does():
  rng = np.random.default_rng(3)
  images = rng.random((6, 28, 28, 1)).astype(np.float32)
  transforms = augmentation.affine_transforms(
      tf.constant(rng.uniform(-0.5, 0.5, 6), tf.float32),
      tf.constant(rng.uniform(0.7, 1.3, 6), tf.float32),
      tf.constant(rng.uniform(-8, 8, 6), tf.float32),
      tf.constant(rng.uniform(-8, 8, 6), tf.float32), 28.0, 28.0)
  kernel = augmentation.affine_warp(images, transforms)
  source_x, source_y = augmentation.affine_source_points(transforms, 28, 28)
  dense = augmentation.warp_bilinear(images, source_x, source_y)
  # Shifts of up to 8 pixels: the edges and the zeros beyond them are read too.
  np.testing.assert_allclose(dense, kernel, atol=1e-5)


def test_the_elastic_distortion_bends_strokes_smoothly_and_keeps_them_in_place():
  keras.utils.set_random_seed(4)
  images = _digit_like(64)
  bent = augmentation.RandomDistortion(0.0, 0.0, 0.0, elastic=1.0)(
      images, training=True).numpy()
  assert bent.shape == images.shape
  # Every image is bent, none beyond recognition: most of the stroke keeps
  # its brightness and the ink stays where it was, give or take a pixel.
  changed = np.abs(bent - images).reshape(64, -1).max(axis=1)
  assert (changed > 0.2).all()
  # (A stroke stretched along its length gains ink, one squeezed loses some;
  # on average the ink is what it was.)
  ink = bent.sum(axis=(1, 2, 3)) / images.sum(axis=(1, 2, 3))
  assert 0.95 < ink.mean() < 1.05
  assert 0.6 < ink.min() and ink.max() < 1.4
  rows = np.arange(28)[None, :, None, None]
  def row_centre(x):
    return (x * rows).sum(axis=(1, 2, 3)) / x.sum(axis=(1, 2, 3))
  assert np.abs(row_centre(bent) - row_centre(images)).max() < 2.0
  # Smooth: neighbouring pixels move together, so the bent image is no
  # rougher than the original (a per-pixel jitter would double its edges).
  def roughness(x):
    return np.abs(np.diff(x, axis=2)).sum()
  assert roughness(bent) < 1.2 * roughness(images)


def test_the_same_seed_draws_the_same_distortions():
  def draw():
    keras.utils.set_random_seed(5)
    return augmentation.RandomDistortion(10.0, 0.1, 0.1, elastic=1.0)(
        _digit_like(4), training=True).numpy()
  np.testing.assert_array_equal(draw(), draw())
