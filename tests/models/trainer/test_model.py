"""The CNN and its optimiser: shapes, the learning-rate schedule, and seeding."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.trainer import augmentation
from models.trainer import model as model_lib
from models.trainer import training_config
from models.trainer.training_config import TrainingConfig

TINY = TrainingConfig(epochs=4, filters=4, batch_size=8, learning_rate=0.01,
                      warmup_epochs=1.0, final_learning_rate_fraction=0.1)


def _learning_rates(hp, steps_per_epoch, steps):
  schedule = model_lib.learning_rate_schedule(hp, steps_per_epoch)
  return [float(schedule(step)) for step in steps]


def test_each_member_maps_images_to_ten_probabilities_and_the_served_model_averages_them():
  # Seeded: untrained, the tiny members answer close to uniform, and unseeded
  # their answers came within 1e-3 of each other about one build in fifteen.
  keras.utils.set_random_seed(0)
  model = model_lib.build(TINY)
  images = np.random.default_rng(0).random((3, 28, 28, 1), np.float32)
  members = model(images, training=False).numpy()
  assert members.shape == (3, TINY.members, 10)
  np.testing.assert_allclose(members.sum(axis=-1), 1.0, rtol=1e-5)
  # Members start from their own weights, so they disagree before training.
  assert not np.allclose(members[:, 0], members[:, 1], atol=1e-4)
  served = model_lib.averaged(model)(images, training=False).numpy()
  assert served.shape == (3, 10)
  np.testing.assert_allclose(served, members.mean(axis=1), rtol=1e-6)


def test_a_single_member_is_served_as_it_is():
  model = model_lib.build(dataclasses.replace(TINY, members=1))
  images = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
  np.testing.assert_allclose(
      model_lib.averaged(model)(images, training=False).numpy(),
      model(images, training=False).numpy()[:, 0], rtol=1e-6)
  with pytest.raises(ValueError, match='training.members=0: a model needs'):
    dataclasses.replace(TINY, members=0)


def test_the_loss_is_the_members_mean_and_the_accuracy_is_the_averaged_models():
  labels = np.array([[0], [1]])
  members = np.array([[[0.9, 0.1] + [0.0] * 8, [0.3, 0.7] + [0.0] * 8],
                      [[0.2, 0.8] + [0.0] * 8, [0.6, 0.4] + [0.0] * 8]],
                     np.float32)
  loss = model_lib.members_crossentropy(labels, members).numpy()
  np.testing.assert_allclose(
      loss, [-(np.log(0.9) + np.log(0.3)) / 2, -(np.log(0.8) + np.log(0.4)) / 2],
      rtol=1e-5)
  # Means (0.6, 0.4) and (0.4, 0.6): both right, though one member errs on each.
  np.testing.assert_array_equal(
      model_lib.ensemble_accuracy(labels, members).numpy(), [1.0, 1.0])
  np.testing.assert_array_equal(
      model_lib.ensemble_accuracy(1 - labels, members).numpy(), [0.0, 0.0])


def test_one_members_loss_trains_only_that_member():
  """The members learn as separate runs would: a loss of member 0 alone moves
  no weight of member 1."""
  model = model_lib.build(TINY)
  images = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
  with tf.GradientTape() as tape:
    first = model(images, training=True)[:, :1]
    loss = tf.reduce_mean(model_lib.members_crossentropy(np.arange(4), first))
  grads = tape.gradient(loss, model.trainable_variables)
  touched = {v.name for v, g in zip(model.trainable_variables, grads)
             if g is not None and float(tf.reduce_max(tf.abs(g))) > 0}
  member_1 = {v.name for v in model.get_layer('member_1').trainable_variables}
  member_0 = {v.name for v in model.get_layer('member_0').trainable_variables}
  assert member_0 <= touched
  assert not member_1 & touched
  # Nothing is shared: member 0's loss reaches a third of the weights.
  assert len(touched) * TINY.members == len(model.trainable_variables)


def test_the_rate_warms_up_linearly_then_decays_to_the_final_fraction():
  steps_per_epoch = 10  # 40 steps in all, the first 10 warming up
  start, middle, peak, last = _learning_rates(TINY, steps_per_epoch,
                                              [0, 5, 10, 40])
  assert start == pytest.approx(0.0)
  assert middle == pytest.approx(0.005)
  assert peak == pytest.approx(0.01)
  assert last == pytest.approx(0.001)


def test_without_warm_up_the_rate_starts_at_its_peak():
  cold = dataclasses.replace(TINY, warmup_epochs=0.0)
  first, last = _learning_rates(cold, 10, [0, 40])
  assert first == pytest.approx(0.01)
  assert last == pytest.approx(0.001)


def _trained_weights(seed, **changes):
  """Weights after two steps of training from scratch, seeded as run_fn seeds."""
  hp = dataclasses.replace(TINY, seed=seed, augment=True, warmup_epochs=0.0,
                           **changes)
  keras.utils.set_random_seed(hp.seed)
  model = model_lib.compile_model(model_lib.build(hp), hp, steps_per_epoch=2)
  images = np.random.default_rng(0).random((16, 28, 28, 1), np.float32)
  labels = np.arange(16) % 10
  model.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
  return model.get_weights()


def test_weight_decay_makes_the_optimiser_adamw_and_shrinks_the_weights():
  hp = dataclasses.replace(TINY, weight_decay=0.5)
  decayed = model_lib.compile_model(model_lib.build(hp), hp, 2).optimizer
  plain = model_lib.compile_model(
      model_lib.build(TINY), dataclasses.replace(TINY, weight_decay=0.0),
      2).optimizer
  assert isinstance(decayed, keras.optimizers.AdamW)
  assert decayed.weight_decay == pytest.approx(0.5)
  assert not isinstance(plain, keras.optimizers.AdamW)
  # Same seed, data and steps: only the decay differs, and it pulls the kernels
  # toward zero (two steps at rate 0.01 shrink them by about 1%).
  with_decay = _trained_weights(1, weight_decay=0.5)
  without = _trained_weights(1, weight_decay=0.0)
  kernels = [i for i, w in enumerate(without) if w.ndim == 4]
  assert kernels
  for i in kernels:
    assert np.linalg.norm(with_decay[i]) < np.linalg.norm(without[i])


def test_the_same_seed_trains_the_same_weights_and_another_does_not():
  first, again, other = _trained_weights(1), _trained_weights(1), _trained_weights(2)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, c) for a, c in zip(first, other))


def _distortion_layers(model):
  return [layer for layer in model.layers
          if isinstance(layer, (augmentation.RandomDistortion,
                                keras.layers.RandomRotation,
                                keras.layers.RandomZoom,
                                keras.layers.RandomTranslation))]


def test_each_member_draws_its_own_distortion_of_every_image():
  keras.utils.set_random_seed(0)
  model = model_lib.build(dataclasses.replace(TINY, augment=True))
  layers = _distortion_layers(model)
  assert len(layers) == TINY.members
  assert all(isinstance(layer, augmentation.RandomDistortion) for layer in layers)
  images = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
  seen = [layer(images, training=True).numpy() for layer in layers]
  assert not np.allclose(seen[0], seen[1], atol=1e-3)


def test_the_shared_chain_is_one_draw_of_keras_layers_before_the_members():
  hp = dataclasses.replace(TINY, augment=True, augmentation='shared_chain')
  layers = _distortion_layers(model_lib.build(hp))
  assert [type(layer) for layer in layers] == [
      keras.layers.RandomRotation, keras.layers.RandomZoom,
      keras.layers.RandomTranslation]
  assert not _distortion_layers(
      model_lib.build(dataclasses.replace(TINY, augment=False)))
  with pytest.raises(ValueError, match="augmentation='elastic': choose one of"):
    dataclasses.replace(TINY, augmentation='elastic')


def _block_dropouts(model):
  """The dropout layers after conv blocks: those that see [N, H, W, C] tensors."""
  return [layer for layer in model.layers
          if isinstance(layer, keras.layers.Dropout) and len(layer.input_shape) == 4]


def _dropped(layer, rate):
  """Which activations of [8, 14, 14, 16] ones `layer` zeroes, at `rate`."""
  layer.rate = rate
  return layer(tf.ones((8, 14, 14, 16)), training=True).numpy() == 0


def test_block_dropout_drops_whole_channels_unless_told_to_drop_activations():
  keras.utils.set_random_seed(0)
  spatial = _block_dropouts(model_lib.build(TINY))
  assert len(spatial) == 2 * TINY.members
  assert all(isinstance(layer, keras.layers.SpatialDropout2D) for layer in spatial)
  dropped = _dropped(spatial[0], 0.5)
  # Each channel of each image is dropped everywhere or nowhere, and some are.
  assert np.all(dropped == dropped[:, :1, :1, :])
  assert 0 < dropped.mean() < 1

  single = _block_dropouts(model_lib.build(
      dataclasses.replace(TINY, spatial_dropout=False)))
  assert len(single) == 2 * TINY.members
  assert not any(isinstance(layer, keras.layers.SpatialDropout2D)
                 for layer in single)
  dropped = _dropped(single[0], 0.5)
  assert not np.all(dropped == dropped[:, :1, :1, :])


def test_every_named_architecture_builds_and_no_other_is_accepted():
  for name in training_config.ARCHITECTURES:
    model = model_lib.build(dataclasses.replace(TINY, architecture=name))
    assert model.output_shape == (None, TINY.members, 10)
  with pytest.raises(ValueError, match="architecture='resnet': choose one of"):
    dataclasses.replace(TINY, architecture='resnet')


@pytest.mark.parametrize('crop', [0, TINY.crop, training_config.MAX_CROP])
def test_each_network_sees_the_centre_of_the_image_left_by_the_crop(crop):
  hp = dataclasses.replace(TINY, crop=crop, augment=False)
  keras.utils.set_random_seed(0)
  served = model_lib.averaged(model_lib.build(hp))
  assert served.input_shape == (None, 28, 28, 1)  # the serving contract's image
  images = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
  answer = served(images, training=False).numpy()
  kept = np.zeros(images.shape, bool)
  kept[:, crop:28 - crop, crop:28 - crop] = True
  border = np.where(kept, images, 0.0)  # the border blanked
  centre = images.copy()
  centre[:, crop + 1:28 - crop - 1, crop + 1:28 - crop - 1] = 0.0
  # The cropped border never reaches the networks; what is left always does.
  np.testing.assert_allclose(served(border, training=False).numpy(), answer,
                             rtol=1e-6)
  assert not np.allclose(served(centre, training=False).numpy(), answer,
                         atol=1e-5)


def test_a_crop_that_leaves_too_little_of_the_image_is_refused():
  with pytest.raises(ValueError, match='training.crop=7: choose 0 to 6 pixels'):
    dataclasses.replace(TINY, crop=7)
  with pytest.raises(ValueError, match='training.crop=-1'):
    dataclasses.replace(TINY, crop=-1)


def test_the_float32_twin_has_the_weights_and_answers_of_a_mixed_precision_model():
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    keras.utils.set_random_seed(0)
    mixed = model_lib.build(TINY)
  finally:
    keras.mixed_precision.set_global_policy('float32')
  images = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
  twin = model_lib.float32_twin(mixed, TINY)
  assert {layer.compute_dtype for layer in mixed.layers[1:]} >= {'bfloat16'}
  assert {layer.compute_dtype for layer in twin.layers[1:]} == {'float32'}
  for a, b in zip(mixed.get_weights(), twin.get_weights()):
    np.testing.assert_array_equal(a, b)
  # bfloat16 keeps 8 bits of mantissa: the answers agree to about 1%.
  np.testing.assert_allclose(twin(images, training=False).numpy(),
                             mixed(images, training=False).numpy(),
                             atol=0.02)
  assert keras.mixed_precision.global_policy().name == 'float32'
