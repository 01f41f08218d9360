"""The whole pipeline against a plain Keras script doing the same job.

(a) the `full` profile from the IDX files to the pushed model, in a fresh output
    directory (nothing cached);
(b) the way the tutorials do it: read the IDX files with numpy, scale, train the
    same model (models/trainer/model.py) with the same epochs, batch size, split,
    precision and best-epoch rule, evaluate on the test set, save a SavedModel.

Prints the test accuracy of both, the pipeline's per-component times and the ratio
pipeline time / plain-script time, and appends them to
bench/results/pipeline_vs_keras.csv (bench/results.py). One run at a time: both
use every core.

  ./mnist-tfx shell -c 'python bench/pipeline_vs_keras.py [--set training.epochs=N ...]'
"""

import argparse
import os
import tempfile
import time

import numpy as np

from components import idx
from pipeline import config as config_lib
from pipeline import data
from pipeline import local_runner
from pipeline.reports import run_report

import results as bench_results  # bench/results.py, beside this script


def plain_keras(config: config_lib.PipelineConfig, out_dir: str) -> float:
  """Returns the test accuracy of the tutorial-style script."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models.trainer import distribution  # pylint: disable=g-import-not-at-top
  from models.trainer import mnist_trainer  # pylint: disable=g-import-not-at-top
  from models.trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top

  def scaled(images):
    return (images.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)

  train_images, train_labels = idx.load(config.abs_data_dir, 'train')
  test_images, test_labels = idx.load(config.abs_data_dir, 'test')
  split = idx.split_indices(len(train_images), config.valid_examples,
                            config.split_seed)
  hp = config.training
  # Batched as the Trainer batches (no tf.data autotuning, whose thread stalls
  # each epoch's end in TF 2.21): the comparison is of the pipeline, not of that.
  train = mnist_trainer.batched_without_autotuning(
      tf.data.Dataset.from_tensor_slices(
          (scaled(train_images[split['train']]), train_labels[split['train']]))
      .shuffle(60000, seed=hp.seed), hp.batch_size, drop_remainder=True)
  valid = (scaled(train_images[split['valid']]), train_labels[split['valid']])
  keras.utils.set_random_seed(hp.seed)
  distribution.set_precision_policy(hp.mixed_precision)
  model = model_lib.compile_model(model_lib.build(hp), hp, len(train))
  model.fit(train, validation_data=valid, epochs=hp.epochs, verbose=2,
            callbacks=[model_lib.early_stopping(hp)])
  _, accuracy = model.evaluate(scaled(test_images), test_labels, verbose=0)
  model_lib.averaged(model).save(os.path.join(out_dir, 'plain_keras_model'),
                                 save_format='tf')
  return accuracy


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--set', dest='overrides', action='append', default=[])
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    config = config_lib.load('full', output_dir=os.path.join(tmp, 'outputs'),
                             data_dir=os.path.abspath('data/mnist'))
    for assignment in args.overrides:
      config = config_lib.apply_override(config, assignment)
    data.ensure(config.abs_data_dir)

    started = time.perf_counter()
    local_runner.run(config)
    pipeline_seconds = time.perf_counter() - started
    summary = run_report.summarize(config)

    started = time.perf_counter()
    plain_accuracy = plain_keras(config, tmp)
    plain_seconds = time.perf_counter() - started

  print('\n'.join(run_report.format_summary(summary)))
  print(f'epochs {config.training.epochs}, batch {config.training.batch_size}')
  print(f'pipeline (IDX -> pushed model): {pipeline_seconds:7.1f} s, '
        f'test accuracy {100 * summary.evaluation.candidate:.2f}%')
  print(f'plain Keras script:             {plain_seconds:7.1f} s, '
        f'test accuracy {100 * plain_accuracy:.2f}%')
  print(f'ratio pipeline / plain:         {pipeline_seconds / plain_seconds:7.3f}')
  hp = config.training
  bench_results.record_and_say('pipeline_vs_keras', {
      'pipeline_s': round(pipeline_seconds, 1),
      'plain_s': round(plain_seconds, 1),
      'ratio': round(pipeline_seconds / plain_seconds, 3),
      'pipeline_accuracy_pct': round(100 * summary.evaluation.candidate, 2),
      'plain_accuracy_pct': round(100 * plain_accuracy, 2),
  }, {'profile': config.profile, 'epochs': hp.epochs,
      'batch': hp.batch_size, 'seed': hp.seed,
      'overrides': ','.join(args.overrides) or 'none'})


if __name__ == '__main__':
  main()
