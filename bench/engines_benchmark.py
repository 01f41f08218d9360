"""The Beam steps on the DirectRunner, on Flink and on Spark, timed.

For each data size (MNIST, and MNIST with every image repeated N times, whose
IDX files this script writes) and each runner, runs the pipeline with a small
model (one epoch of the smoke profile's CNN, batches of 512, no augmentation)
and reports the wall time of the four Beam steps (IdxExampleGen, StatisticsGen, Transform, Evaluator) and their
ratio to the DirectRunner's. A cluster's start-up (pipeline/clusters/, two
workers, parallelism 2) is timed apart. Appends one row per runner and size to
bench/results/engines_benchmark.csv.

  ./mnist-tfx shell -c 'python bench/engines_benchmark.py --scales 1,10 --runners direct,flink,spark'

On one machine every worker shares its cores: what this shows is the cost a
cluster adds (job submission, SDK workers, shuffles between JVMs and Python),
not the speed-up more machines would give (docs/scale-out.md).
"""

import argparse
import dataclasses
import os
import struct
import tempfile
import time
from typing import Dict

from pipeline import config as config_lib
from pipeline import data
from pipeline import local_runner
from pipeline.clusters import flink
from pipeline.clusters import spark

import results as bench_results  # bench/results.py, beside this script

BEAM_STEPS = ('IdxExampleGen', 'StatisticsGen', 'Transform', 'Evaluator')
CLUSTERS = {'flink': flink, 'spark': spark}
IDX_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def replicate(source_dir: str, target_dir: str, times: int) -> str:
  """Writes the four IDX files with every item repeated `times` times (the
  item count in the header multiplied to match)."""
  os.makedirs(target_dir, exist_ok=True)
  for name in IDX_FILES:
    with open(os.path.join(source_dir, name), 'rb') as f:
      raw = f.read()
    dims = raw[3]
    header_size = 4 + 4 * dims
    count, = struct.unpack('>I', raw[4:8])
    header = raw[:4] + struct.pack('>I', count * times) + raw[8:header_size]
    with open(os.path.join(target_dir, name), 'wb') as f:
      f.write(header)
      for _ in range(times):
        f.write(raw[header_size:])
  return target_dir


def run(runner: str, data_dir: str, workdir: str) -> Dict[str, float]:
  """Per-step seconds of one pipeline run, plus the cluster's start-up."""
  figures = {'startup_s': 0.0}
  cluster_dir = os.path.join(workdir, 'cluster')
  beam = config_lib.BeamConfig()
  if runner in CLUSTERS:
    started = time.perf_counter()
    state = CLUSTERS[runner].up(cluster_dir)
    figures['startup_s'] = time.perf_counter() - started
    beam = config_lib.BeamConfig(runner=runner, job_endpoint=state.job_endpoint,
                                 worker_pool=state.worker_pool, parallelism=2)
  # The Trainer is not what is timed: one epoch of the smoke CNN in big batches
  # and without augmentation keeps it short at ten times MNIST.
  smoke = config_lib.load('smoke')
  training = dataclasses.replace(smoke.training, epochs=1, batch_size=512,
                                 augment=False)
  config = config_lib.load(
      'full', data_dir=data_dir, output_dir=os.path.join(workdir, 'out'),
      beam=beam, training=training,
      evaluation=config_lib.EvaluationConfig(min_accuracy=0.0,
                                             max_accuracy_drop=1.0))
  try:
    times = local_runner.run(config, out=print)
  finally:
    if runner in CLUSTERS:
      CLUSTERS[runner].down(cluster_dir)
  for step in BEAM_STEPS:
    figures[f'{step}_s'] = times[step]
  figures['beam_steps_s'] = sum(times[step] for step in BEAM_STEPS)
  return figures


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--scales', default='1,10',
                      help='comma-separated: MNIST repeated this many times')
  parser.add_argument('--runners', default='direct,flink,spark')
  args = parser.parse_args()
  mnist = config_lib.load().abs_data_dir
  data.ensure(mnist)
  for scale in [int(s) for s in args.scales.split(',')]:
    with tempfile.TemporaryDirectory() as tmp:
      data_dir = mnist if scale == 1 else replicate(
          mnist, os.path.join(tmp, 'data'), scale)
      direct_s = None
      for runner in args.runners.split(','):
        figures = run(runner, data_dir, os.path.join(tmp, runner))
        if runner == 'direct':
          direct_s = figures['beam_steps_s']
        figures['ratio_to_direct'] = (figures['beam_steps_s'] / direct_s
                                      if direct_s else float('nan'))
        print(f'{runner} x{scale}: ' + ', '.join(
            f'{k} {v:.1f}' for k, v in figures.items()))
        bench_results.record_and_say(
            'engines_benchmark',
            {'runner': runner, 'scale': scale,
             'train_examples': 60000 * scale,
             **{k: round(v, 2) for k, v in figures.items()}},
            {'workers': 2, 'parallelism': 2, 'epochs': 1,
             'batch_size': 512})


if __name__ == '__main__':
  main()
