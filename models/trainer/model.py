"""The Keras CNN, top to bottom, and how it is optimised.

Two architectures, chosen by `TrainingConfig.architecture` (recipe.md says why):
- `compact`, the default: one conv at 28x28, a strided 3x3 conv down to 14x14,
  two convs there, a strided 3x3 conv down to 7x7 and one conv there: about 60%
  of the computation per image of `reference`, most of it at 14x14 and 7x7, where
  the digit's strokes are already resolved.
- `reference` (the `reference` profile, the earlier default): two convs at 28x28
  and a strided 5x5 conv per block.
Both end in a 4x4 conv head and softmax. The default looks at the centre 24x24
of each image (`crop`): MNIST's border is nearly empty, and convolving it cost a
quarter of the arithmetic. Every conv is conv-BN-ReLU; dropout
follows each block (of whole channels unless `spatial_dropout` is off) and the
head's conv. Random small shifts, rotations and zooms (optionally with
an elastic bending of the strokes, off by default) augment the digits during
training only: the augmentation layers are the identity at inference, so the
exported model sees the images as they are.

The default trains an ensemble in one model: `members` networks side by side,
each with its own distortion of every image (augmentation.py), its own weights,
dropout and loss, so that they learn as separate runs would, and make different
mistakes. `build`
returns the network being trained, whose output holds every member's
probabilities; `averaged` is the one served, which answers with their mean.
Three networks of half the width train as fast as one full-width network, and
their average erred less than each of them alone in every run measured (recipe.md).

Keras 2 (tf_keras), not Keras 3: TFT's transform layer and TFMA's Keras support are
built for it, and importing TFT switches `tf.keras` to it anyway; naming it makes the
choice explicit rather than an accident of import order.
"""

import functools

import tensorflow as tf
import tf_keras as keras

from models import features
from models.trainer import augmentation
from models.trainer.training_config import TrainingConfig


def _conv_bn_relu(x, filters, kernel_size, strides=1, padding='same'):
  x = keras.layers.Conv2D(filters, kernel_size, strides=strides,
                             padding=padding, use_bias=False)(x)
  # momentum 0.9: the moving statistics settle within tens of steps, so even a
  # short run evaluates with the statistics of its data.
  x = keras.layers.BatchNormalization(momentum=0.9)(x)
  return keras.layers.ReLU()(x)


# A body maps images to 7x7 features; `dropout()` makes the layer after each block.


def _compact(x, f, dropout):
  x = _conv_bn_relu(x, f, 3)                        # 28x28 (24x24 cropped)
  x = _conv_bn_relu(x, f, 3, strides=2)             # 14x14 (12x12)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = dropout()(x)
  x = _conv_bn_relu(x, 2 * f, 3, strides=2)         # 7x7 (6x6)
  x = _conv_bn_relu(x, 2 * f, 3)
  return dropout()(x)


def _reference(x, f, dropout):
  x = _conv_bn_relu(x, f, 3)                        # 28x28
  x = _conv_bn_relu(x, f, 3)
  x = _conv_bn_relu(x, f, 5, strides=2)             # 14x14
  x = dropout()(x)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = _conv_bn_relu(x, 2 * f, 5, strides=2)         # 7x7
  return dropout()(x)


BODIES = {'compact': _compact, 'reference': _reference}  # training_config.ARCHITECTURES


def _block_dropout(hp: TrainingConfig):
  """The dropout layer after a conv block: whole channels or single activations."""
  if hp.spatial_dropout:
    return keras.layers.SpatialDropout2D(hp.dropout)
  return keras.layers.Dropout(hp.dropout)


def _member(x, hp: TrainingConfig, index: int):
  """One network of the ensemble: [N, 28, 28, 1] -> [N, 1, 10] probabilities."""
  if hp.crop:
    # After the distortion, so a digit shifted towards an edge is cut as the
    # frame would cut it; at inference the same centre of every image is seen.
    x = keras.layers.Cropping2D(hp.crop)(x)
  x = BODIES[hp.architecture](x, hp.filters, functools.partial(_block_dropout, hp))
  x = _conv_bn_relu(x, 4 * hp.filters, 4, padding='valid')   # 4x4
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(hp.dropout)(x)
  # float32 even under mixed precision: a float16 softmax loses small probabilities.
  x = keras.layers.Dense(features.NUM_CLASSES, activation='softmax',
                            dtype='float32', name=f'member_{index}')(x)
  return keras.layers.Reshape((1, features.NUM_CLASSES), dtype='float32')(x)


def _distorted(x, hp: TrainingConfig):
  """A member's own random distortion of the images, if it draws one."""
  if hp.augment and hp.augmentation == 'per_member':
    return augmentation.RandomDistortion(hp.rotation_degrees, hp.zoom, hp.shift,
                                         hp.elastic)(x)
  return x


def build(hp: TrainingConfig) -> keras.Model:
  """Returns the uncompiled network trained: [N, 28, 28, 1] floats in [0, 1] ->
  [N, members, 10], each member's probabilities."""
  inputs = keras.Input(
      shape=(features.IMAGE_ROWS, features.IMAGE_COLS, 1),
      name=features.TRANSFORMED_IMAGE_KEY)
  x = inputs
  if hp.augment and hp.augmentation == 'shared_chain':
    x = keras.layers.RandomRotation(hp.rotation_degrees / 360.0,
                                       fill_mode='constant')(x)
    x = keras.layers.RandomZoom(hp.zoom, fill_mode='constant')(x)
    x = keras.layers.RandomTranslation(hp.shift, hp.shift,
                                          fill_mode='constant')(x)
  members = [_member(_distorted(x, hp), hp, i) for i in range(hp.members)]
  outputs = (members[0] if hp.members == 1 else keras.layers.Concatenate(
      axis=1, dtype='float32', name='members')(members))
  return keras.Model(inputs, outputs, name='mnist_cnn')


def averaged(model: keras.Model) -> keras.Model:
  """The served model: `model`'s layers and weights, answering [N, 10], the mean
  of its members' probabilities (a probability distribution again)."""
  probabilities = keras.layers.GlobalAveragePooling1D(
      dtype='float32', name='probabilities')(model.output)
  return keras.Model(model.input, probabilities, name='mnist_cnn_ensemble')


def members_crossentropy(labels, member_probabilities):
  """The training loss: each member's cross-entropy, averaged. Each member's
  gradient comes from its own loss alone, as if it were trained by itself (a
  loss on the averaged probabilities would let them make up for each other
  instead; that was not measured here)."""
  labels = tf.reshape(tf.cast(labels, tf.int64), [-1, 1])
  labels = tf.repeat(labels, tf.shape(member_probabilities)[1], axis=1)
  return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
      labels, member_probabilities), axis=-1)


def ensemble_accuracy(labels, member_probabilities):
  """The accuracy of the averaged probabilities: that of the served model."""
  return keras.metrics.sparse_categorical_accuracy(
      labels, tf.reduce_mean(member_probabilities, axis=1))


def float32_twin(model: keras.Model, hp: TrainingConfig) -> keras.Model:
  """`model`'s network and weights, computing in float32 whatever the policy it
  was trained under: the served model then runs at full speed on any CPU (one
  without bfloat16 instructions would emulate it, slower than float32) and gives
  the same answers everywhere. Mixed precision keeps every variable in float32,
  so nothing is lost in the copy."""
  policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy('float32')
  try:
    twin = build(hp)
  finally:
    keras.mixed_precision.set_global_policy(policy)
  twin.set_weights(model.get_weights())
  return twin


def learning_rate_schedule(hp: TrainingConfig, steps_per_epoch: int):
  """A linear ramp from 0 to `learning_rate` over `warmup_epochs`, then a cosine
  decay to `final_learning_rate_fraction` of it at the last step."""
  total_steps = max(1, hp.epochs * steps_per_epoch)
  warmup_steps = min(int(hp.warmup_epochs * steps_per_epoch), total_steps - 1)
  if not warmup_steps:
    return keras.optimizers.schedules.CosineDecay(
        hp.learning_rate, decay_steps=total_steps,
        alpha=hp.final_learning_rate_fraction)
  return keras.optimizers.schedules.CosineDecay(
      0.0, decay_steps=total_steps - warmup_steps,
      alpha=hp.final_learning_rate_fraction, warmup_target=hp.learning_rate,
      warmup_steps=warmup_steps)


def compile_model(model: keras.Model, hp: TrainingConfig, steps_per_epoch: int):
  """Adam on the schedule above, with decoupled weight decay (AdamW) unless
  `weight_decay` is 0, minimising the members' cross-entropy."""
  schedule = learning_rate_schedule(hp, steps_per_epoch)
  optimizer = (keras.optimizers.AdamW(schedule, weight_decay=hp.weight_decay)
               if hp.weight_decay else keras.optimizers.Adam(schedule))
  model.compile(
      optimizer=optimizer,
      loss=members_crossentropy,
      # Named as Keras names a single network's accuracy: the progress lines and
      # the run report read it under that name.
      metrics=[keras.metrics.MeanMetricWrapper(
          ensemble_accuracy, name='sparse_categorical_accuracy')])
  return model


def early_stopping(hp: TrainingConfig) -> keras.callbacks.EarlyStopping:
  """Keeps the weights of the epoch with the lowest validation loss, and stops
  after `early_stopping_patience` epochs without a better one (0: never).

  The loss, not the accuracy: on 5000 validation images accuracy moves in steps
  of 0.02% and ties often, while the loss still tells the epochs apart.
  """
  return keras.callbacks.EarlyStopping(
      monitor='val_loss', patience=hp.early_stopping_patience or hp.epochs,
      restore_best_weights=True, verbose=1)
