"""AnomalyGate: stop the pipeline when ExampleValidator found anomalies.

ExampleValidator only records what it finds (and marks each split blessed or not in
the `blessed` custom property of its output). Training on data that broke the schema
is never what anyone wants, so this gate sits between ExampleValidator and Transform
and fails the run with a readable list of what was anomalous, split by split.
"""

import os
from typing import Dict, List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

ANOMALIES_FILE = 'SchemaDiff.pb'  # What ExampleValidator writes in each split.


class DataAnomaliesError(RuntimeError):
  """The examples do not match the schema; the message lists every anomaly."""


def load_anomalies(uri: str) -> Dict[str, anomalies_pb2.Anomalies]:
  """Reads the anomalies artifact at `uri`: split name -> Anomalies proto."""
  result = {}
  for entry in sorted(tf.io.gfile.listdir(uri)):
    entry = entry.rstrip('/')
    path = os.path.join(uri, entry, ANOMALIES_FILE)
    if entry.startswith('Split-') and tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path, 'rb') as f:
        result[entry[len('Split-'):]] = anomalies_pb2.Anomalies.FromString(
            f.read())
  return result


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
  """One line per anomaly: `split: feature: short description: description`."""
  lines = []
  for split, anomalies in sorted(anomalies_by_split.items()):
    for feature, info in sorted(anomalies.anomaly_info.items()):
      lines.append(f'{split}: feature {feature!r}: {info.short_description}: '
                   f'{info.description}')
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      lines.append(f'{split}: dataset: {info.short_description}: '
                   f'{info.description}')
  return lines


@component
def AnomalyGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
  """Raises DataAnomaliesError if ExampleValidator found any anomaly."""
  problems = describe(load_anomalies(anomalies.uri))
  if problems:
    raise DataAnomaliesError(
        'ExampleValidator found anomalies; stopping before Transform.\n  ' +
        '\n  '.join(problems) +
        f'\n(anomalies artifact: {anomalies.uri})')
  print(f'AnomalyGate: no anomalies in {anomalies.uri}')
