"""What the Beam steps of a run wrote, in forms two runs can be compared in: the
examples of each split as sorted serialized records, the statistics as numbers
per feature, and the pipeline's latest output of a step."""

import glob
import math
import os
from typing import Dict, List, Tuple

import tensorflow as tf
import tensorflow_data_validation as tfdv

from pipeline import config as config_lib
from pipeline import mlmd

SPLITS = ('train', 'valid', 'eval')


def output_uri(config: config_lib.PipelineConfig, node_id: str, key: str) -> str:
  nodes = {node.node_id: node for node in mlmd.latest_run(config)}
  return dict(nodes[node_id].outputs)[key].uri


def sorted_examples(uri: str, split: str) -> List[bytes]:
  """Every tf.Example of a split, serialized deterministically and sorted: the
  same examples give the same list whatever the order and the number of files a
  runner wrote them in. (The bytes as written can differ for the same example:
  protobuf writes a map's entries, here the features, in an order that differs
  from process to process.)"""
  files = sorted(glob.glob(os.path.join(uri, f'Split-{split}', '*.gz')))
  assert files, f'no records in {uri}/Split-{split}'
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
  return sorted(
      tf.train.Example.FromString(record.numpy()).SerializeToString(
          deterministic=True) for record in dataset)


def statistics(uri: str, split: str) -> Dict[Tuple[str, str], float]:
  """Per feature, the exact statistics (counts, mean, deviation, extremes,
  zeros) as (feature, name) -> value. Quantiles and histograms are left out:
  TFDV sketches them, and merging sketches from two workers may move their
  boundaries."""
  stats = tfdv.load_stats_binary(
      os.path.join(uri, f'Split-{split}', 'FeatureStats.pb'))
  values = {}
  dataset, = stats.datasets
  values[('', 'num_examples')] = dataset.num_examples
  for feature in dataset.features:
    name = feature.path.step[0] if feature.path.step else feature.name
    kind = feature.WhichOneof('stats')
    block = getattr(feature, kind)
    common = block.common_stats
    for field in ('num_non_missing', 'num_missing', 'min_num_values',
                  'max_num_values', 'avg_num_values', 'tot_num_values'):
      values[(name, field)] = getattr(common, field)
    if kind == 'num_stats':
      for field in ('mean', 'std_dev', 'num_zeros', 'min', 'max'):
        values[(name, field)] = getattr(block, field)
  return values


def differences(want: Dict, got: Dict, rel: float = 1e-6) -> List[str]:
  """The statistics that differ by more than float rounding."""
  found = []
  for key in sorted(set(want) | set(got)):
    a, b = want.get(key), got.get(key)
    if a is None or b is None or not math.isclose(a, b, rel_tol=rel,
                                                  abs_tol=1e-9):
      found.append(f'{key}: {a} != {b}')
  return found
