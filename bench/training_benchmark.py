"""Training compute of the `fast` profile's recipe against the default (`full`).

Both models are built by models/trainer/model.py from their profile's TrainingConfig
and trained in this
one process on the same in-memory MNIST batches, in alternating rounds of the same
number of steps, so that a noisy machine slows both alike. For each it prints the
training throughput (images/s, median over rounds) and the projected training time
of a full run (epochs x training images / throughput), then their ratio: the share
of the default's training compute the fast recipe needs.

  ./mnist-tfx shell -c 'python bench/training_benchmark.py [--rounds 3] [--steps 30]'
"""

import argparse
import statistics
import time

import numpy as np

from components import idx
from models.trainer import progress
from pipeline import config as config_lib
from pipeline import data

PROFILES = ('full', 'fast')
TARGET_RATIO = 1 / 3


def _trainable(config: config_lib.PipelineConfig, images, labels, steps: int):
  """A compiled model of the profile and a function that trains it `steps` steps."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models.trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  hp = config.training
  model = model_lib.compile_model(model_lib.build(hp), hp,
                                  len(images) // hp.batch_size)
  batches = iter(tf.data.Dataset.from_tensor_slices((images, labels))
                 .shuffle(len(images), seed=hp.seed).repeat()
                 .batch(hp.batch_size, drop_remainder=True).prefetch(2))

  def train():
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * hp.batch_size

  return train


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=3)
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

  trainers = {name: _trainable(c, images, labels, args.steps)
              for name, c in configs.items()}
  for _ in range(2):  # builds and traces each model, fills the shuffle buffers
    for train_steps in trainers.values():
      train_steps()
  rates = {name: [] for name in PROFILES}
  for round_number in range(1, args.rounds + 1):
    for name, train_steps in trainers.items():
      started = time.perf_counter()
      seen = train_steps()
      rates[name].append(seen / (time.perf_counter() - started))
    print(f'round {round_number}/{args.rounds}: ' + ', '.join(
        f'{name} {rates[name][-1]:.0f} images/s' for name in PROFILES), flush=True)

  projected = {}
  print(f'{"profile":10s} {"epochs":>6s} {"batch":>5s} {"filters":>7s} '
        f'{"images/s":>9s}  projected training time of a full run')
  for name, config in configs.items():
    hp = config.training
    rate = statistics.median(rates[name])
    projected[name] = hp.epochs * len(images) / rate
    print(f'{name:10s} {hp.epochs:6d} {hp.batch_size:5d} {hp.filters:7d} '
          f'{rate:9.0f}  {progress.duration(projected[name])}')
  ratio = projected['fast'] / projected['full']
  print(f'ratio fast / full: {ratio:.3f} (target <= {TARGET_RATIO:.2f}: '
        f'{"met" if ratio <= TARGET_RATIO else "NOT met"})')


if __name__ == '__main__':
  main()
