"""The Keras CNN, top to bottom.

Two convolution blocks (conv-BN-ReLU twice, then a strided conv to downsample) with
dropout, a 4x4 conv head and softmax. Random small shifts, rotations and zooms
augment the digits during training only: Keras preprocessing layers are identity
at inference, so the exported model sees the images as they are.

Keras 2 (tf_keras), not Keras 3: TFT's transform layer and TFMA's Keras support are
built for it, and importing TFT switches `tf.keras` to it anyway; naming it makes the
choice explicit rather than an accident of import order.
"""

import tensorflow as tf
import tf_keras as keras

from models import features
from pipeline.config import TrainingConfig


def _conv_bn_relu(x, filters, kernel_size, strides=1, padding='same'):
  x = keras.layers.Conv2D(filters, kernel_size, strides=strides,
                             padding=padding, use_bias=False)(x)
  # momentum 0.9: the moving statistics settle within tens of steps, so even a
  # short run evaluates with the statistics of its data.
  x = keras.layers.BatchNormalization(momentum=0.9)(x)
  return keras.layers.ReLU()(x)


def build(hp: TrainingConfig) -> keras.Model:
  """Returns the uncompiled CNN: [N, 28, 28, 1] floats in [0, 1] -> [N, 10] probabilities."""
  inputs = keras.Input(
      shape=(features.IMAGE_ROWS, features.IMAGE_COLS, 1),
      name=features.TRANSFORMED_IMAGE_KEY)
  x = inputs
  if hp.augment:
    x = keras.layers.RandomRotation(hp.rotation_degrees / 360.0,
                                       fill_mode='constant')(x)
    x = keras.layers.RandomZoom(hp.zoom, fill_mode='constant')(x)
    x = keras.layers.RandomTranslation(hp.shift, hp.shift,
                                          fill_mode='constant')(x)
  f = hp.filters
  x = _conv_bn_relu(x, f, 3)
  x = _conv_bn_relu(x, f, 3)
  x = _conv_bn_relu(x, f, 5, strides=2)             # 14x14
  x = keras.layers.Dropout(hp.dropout)(x)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = _conv_bn_relu(x, 2 * f, 3)
  x = _conv_bn_relu(x, 2 * f, 5, strides=2)         # 7x7
  x = keras.layers.Dropout(hp.dropout)(x)
  x = _conv_bn_relu(x, 4 * f, 4, padding='valid')   # 4x4
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(hp.dropout)(x)
  # float32 even under mixed precision: a float16 softmax loses small probabilities.
  outputs = keras.layers.Dense(features.NUM_CLASSES, activation='softmax',
                                  dtype='float32', name='probabilities')(x)
  return keras.Model(inputs, outputs, name='mnist_cnn')


def compile_model(model: keras.Model, hp: TrainingConfig, steps_per_epoch: int):
  """Adam with a cosine-decaying learning rate over the whole run."""
  schedule = keras.optimizers.schedules.CosineDecay(
      hp.learning_rate, decay_steps=max(1, hp.epochs * steps_per_epoch),
      alpha=hp.final_learning_rate_fraction)
  model.compile(
      optimizer=keras.optimizers.Adam(schedule),
      loss='sparse_categorical_crossentropy',
      metrics=['sparse_categorical_accuracy'])
  return model
