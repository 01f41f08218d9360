"""IdxExampleGen against a plain numpy conversion of the same IDX files.

Both write the same train/valid/eval splits of gzipped tf.Examples; the component
does it as a TFX component (driver, Beam, MLMD), the baseline as a loop over numpy
arrays with tf.io.TFRecordWriter. Prints both wall times and their ratio, and
appends them to bench/results/example_gen_benchmark.csv (bench/results.py).

  ./mnist-tfx shell -c 'python bench/example_gen_benchmark.py [--running_mode in_memory|multi_processing]'
"""

import argparse
import dataclasses
import os
import tempfile
import time

import tensorflow as tf
from tfx import v1 as tfx

from components import idx
from components.idx_example_gen import IdxExampleGen
from models import features
from pipeline import config as config_lib
from pipeline import data

import results as bench_results  # bench/results.py, beside this script


def numpy_conversion(data_dir: str, out_dir: str, config) -> int:
  """The plain way: numpy arrays in, one gzipped TFRecord file per split out."""
  parts = {part: idx.load(data_dir, part) for part in ('train', 'test')}
  splits = idx.example_indices(len(parts['train'][0]), len(parts['test'][0]),
                               config.valid_examples, config.split_seed)
  count = 0
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  for split, (part, indices) in splits.items():
    images, labels = parts[part]
    os.makedirs(os.path.join(out_dir, split))
    path = os.path.join(out_dir, split, 'data.tfrecord.gz')
    with tf.io.TFRecordWriter(path, options) as writer:
      for i in indices:
        writer.write(features.example(images[i].tolist(),
                                      int(labels[i])).SerializeToString())
        count += 1
  return count


def component_run(data_dir: str, out_dir: str, config, running_mode: str) -> None:
  pipeline = tfx.dsl.Pipeline(
      pipeline_name='examplegen-bench',
      pipeline_root=os.path.join(out_dir, 'root'),
      components=[IdxExampleGen(input_base=data_dir,
                                valid_examples=config.valid_examples,
                                split_seed=config.split_seed)],
      enable_cache=False,
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(os.path.join(out_dir, 'mlmd.sqlite')),
      beam_pipeline_args=dataclasses.replace(
          config.beam, direct_running_mode=running_mode).pipeline_args())
  tfx.orchestration.LocalDagRunner().run(pipeline)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--running_mode', default=None,
                      help='Beam DirectRunner mode (default: the config\'s)')
  args = parser.parse_args()
  config = config_lib.load()
  data.ensure(config.abs_data_dir)
  mode = args.running_mode or config.beam.direct_running_mode
  with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    count = numpy_conversion(config.abs_data_dir, os.path.join(tmp, 'np'), config)
    numpy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    component_run(config.abs_data_dir, os.path.join(tmp, 'tfx'), config, mode)
    component_seconds = time.perf_counter() - started
  print(f'examples written:            {count}')
  print(f'plain numpy conversion:      {numpy_seconds:6.1f} s')
  print(f'IdxExampleGen ({mode}): {component_seconds:6.1f} s (whole LocalDagRunner run)')
  print(f'ratio component / numpy:     {component_seconds / numpy_seconds:6.2f}')
  bench_results.record_and_say('example_gen_benchmark', {
      'examples': count,
      'numpy_s': round(numpy_seconds, 1),
      'component_s': round(component_seconds, 1),
      'ratio': round(component_seconds / numpy_seconds, 2),
  }, {'running_mode': mode})


if __name__ == '__main__':
  main()
