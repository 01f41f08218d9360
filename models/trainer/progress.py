"""One log line per training epoch, with the time left for the whole training.

Keras' own per-epoch output goes to stdout, which `mnist-tfx run` keeps in its log
file; this line goes through absl logging, where the local runner's progress
printer picks up lines that start with "Epoch N/M" and shows them to the user.
"""

import time

from absl import logging
import tf_keras as keras


def duration(seconds: float) -> str:
  """'3 min 05 s', or '42 s' under a minute."""
  minutes, seconds = divmod(int(round(seconds)), 60)
  return f'{minutes} min {seconds:02d} s' if minutes else f'{seconds} s'


class EpochProgress(keras.callbacks.Callback):
  """Logs loss and accuracy of each epoch, its time, and the estimated time left."""

  def __init__(self, epochs: int):
    super().__init__()
    self.epochs = epochs
    self._train_started = self._epoch_started = 0.0

  def on_train_begin(self, logs=None):
    self._train_started = time.monotonic()

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_started = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    now = time.monotonic()
    done = epoch + 1
    left = (now - self._train_started) / done * (self.epochs - done)
    metrics = ', '.join(
        f'{name} {value:.4f}' for name, value in logs.items()
        if name in ('loss', 'sparse_categorical_accuracy', 'val_loss',
                    'val_sparse_categorical_accuracy'))
    logging.info('Epoch %d/%d: %s (%.1f s; about %s left)', done, self.epochs,
                 metrics.replace('sparse_categorical_', ''),
                 now - self._epoch_started, duration(left))
