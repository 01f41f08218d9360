"""Training compute of the default recipe (`full`) against the one it replaced (`reference`).

Both models are built by models/trainer/model.py from their profile's TrainingConfig,
in the precision the Trainer would choose on this machine (distribution.py), and
trained in this one process on the same in-memory MNIST batches, in alternating
rounds of the same number of steps, so that a noisy machine slows both alike. For
each it prints the training throughput (images/s over the steady part of each
round, median over rounds) and the projected training time
of a full run (epochs x training images / throughput), then their ratio: the share
of the reference's training compute the default needs. The figures are appended
to bench/results/training_benchmark.csv (bench/results.py).

  ./mnist-tfx shell -c 'python bench/training_benchmark.py [--rounds 5] [--steps 60]'
"""

import argparse
import os
import statistics
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import idx
from models.trainer import distribution
from models.trainer import model as model_lib
from models.trainer import progress
from pipeline import config as config_lib
from pipeline import data

import results as bench_results  # bench/results.py, beside this script

PROFILES = ('reference', 'full')
TARGET_RATIO = 1 / 3


class _SteadyStateTimer(keras.callbacks.Callback):
  """Times the batches of a `fit` call after its first `skip`: the rate a full run
  repeats. The start and end of each call stay out: with TF 2.21 a call's end
  waited for a timer whose period doubles from 10 ms (seen: whole calls of 5.12,
  10.24, 20.48 and 40.96 s, while their batches took 4.4-9 s)."""

  def __init__(self, skip: int):
    super().__init__()
    self.skip = skip
    self.batches, self.seconds = 0, 0.0
    self._start = 0.0

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    if batch + 1 == self.skip:
      self._start = now
    elif batch + 1 > self.skip:
      self.batches, self.seconds = batch + 1 - self.skip, now - self._start


def _trainable(config: config_lib.PipelineConfig, images, labels, steps: int):
  """A function that trains a compiled model of the profile `steps` steps, and the
  name of the precision policy the model computes in."""
  hp = config.training
  policy = distribution.set_precision_policy(hp.mixed_precision)
  model = model_lib.compile_model(model_lib.build(hp), hp,
                                  len(images) // hp.batch_size)
  batches = iter(tf.data.Dataset.from_tensor_slices((images, labels))
                 .shuffle(len(images), seed=hp.seed).repeat()
                 .batch(hp.batch_size, drop_remainder=True).prefetch(2))
  timer = _SteadyStateTimer(skip=min(5, steps - 1))

  def train():
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0,
              callbacks=[timer])
    return timer.batches * hp.batch_size, timer.seconds

  return train, policy


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=60,
                      help='training steps per model per round')
  args = parser.parse_args()

  configs = {name: config_lib.load(name) for name in PROFILES}
  data_dir = configs['full'].abs_data_dir
  data.ensure(data_dir)
  images, labels = idx.load(data_dir, 'train')
  train = idx.split_indices(len(images), configs['full'].valid_examples,
                            configs['full'].split_seed)['train']
  images = (images[train].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
  labels = labels[train]

  trainers, policies = {}, {}
  for name, config in configs.items():
    trainers[name], policies[name] = _trainable(config, images, labels,
                                                args.steps)
  for _ in range(2):  # builds and traces each model, fills the shuffle buffers
    for train_steps in trainers.values():
      train_steps()
  rates = {name: [] for name in PROFILES}
  for round_number in range(1, args.rounds + 1):
    for name, train_steps in trainers.items():
      seen, seconds = train_steps()
      rates[name].append(seen / seconds)
    print(f'round {round_number}/{args.rounds}: ' + ', '.join(
        f'{name} {rates[name][-1]:.0f} images/s' for name in PROFILES), flush=True)

  projected, medians, sides = {}, {}, {}
  print(f'{"profile":10s} {"networks x filters":19s} {"input":5s} {"precision":15s} '
        f'{"epochs":>6s} {"batch":>5s} {"images/s":>9s}  '
        'projected training time of a full run')
  for name, config in configs.items():
    hp = config.training
    rate = medians[name] = statistics.median(rates[name])
    projected[name] = hp.epochs * len(images) / rate
    networks = f'{hp.members} {hp.architecture} x {hp.filters}'
    # What each network sees (model.py).
    side = sides[name] = images.shape[1] - 2 * hp.crop
    print(f'{name:10s} {networks:19s} {f"{side}x{side}":5s} {policies[name]:15s} '
          f'{hp.epochs:6d} {hp.batch_size:5d} {rate:9.0f}  '
          f'{progress.duration(projected[name])}')
  ratio = projected['full'] / projected['reference']
  print(f'ratio full / reference: {ratio:.3f} (target <= {TARGET_RATIO:.2f}: '
        f'{"met" if ratio <= TARGET_RATIO else "NOT met"})')
  bench_results.record_and_say('training_benchmark', {
      'reference_images_per_s': round(medians['reference']),
      'full_images_per_s': round(medians['full']),
      'reference_train_s': round(projected['reference']),
      'full_train_s': round(projected['full']),
      'ratio': round(ratio, 3),
  }, {'rounds': args.rounds, 'steps': args.steps,
      'precision_reference': policies['reference'],
      'precision_full': policies['full'],
      'input_reference': f'{sides["reference"]}x{sides["reference"]}',
      'input_full': f'{sides["full"]}x{sides["full"]}',
      'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')})


if __name__ == '__main__':
  main()
