"""An HTML page of the data statistics and anomalies of the latest pipeline run.

It holds TFDV's own Facets view (train against eval; Facets loads its script from
the web when the page is opened) and, so the page says something offline too, a
table of every feature per split, the label distribution as a picture and the
anomalies ExampleValidator reported.
"""

import base64
import html
import io
import os
from typing import Dict, List, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from components import anomaly_gate
from models import features
from pipeline import config as config_lib
from pipeline import mlmd

STATS_FILE = 'FeatureStats.pb'  # What StatisticsGen writes in each split.


def _artifact_uri(config: config_lib.PipelineConfig, nodes: List[mlmd.NodeRun],
                  node: str, key: str) -> str:
  artifact = mlmd.output(nodes, node, key)
  if artifact is None:
    raise mlmd.MetadataError(
        f'the latest run in {config.abs_output_dir} has no {node}.{key}: run '
        '`mnist-tfx run` again')
  return artifact.uri


def load_split_statistics(
    statistics_uri: str) -> Dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
  result = {}
  for entry in sorted(os.listdir(statistics_uri)):
    path = os.path.join(statistics_uri, entry, STATS_FILE)
    if entry.startswith('Split-') and os.path.exists(path):
      result[entry[len('Split-'):]] = tfdv.load_stats_binary(path)
  return result


def _feature_rows(split: str, stats: statistics_pb2.DatasetFeatureStatisticsList):
  dataset = stats.datasets[0]
  for feature in dataset.features:
    name = feature.path.step[0] if feature.path.step else feature.name
    if feature.HasField('num_stats'):
      num = feature.num_stats
      common = num.common_stats
      summary = (f'{num.min:g}', f'{num.max:g}', f'{num.mean:.3f}',
                 f'{num.num_zeros:,}')
    else:  # categorical: the label, as the schema declares it
      strings = feature.string_stats
      common = strings.common_stats
      top = strings.top_values[0] if strings.top_values else None
      summary = (f'{strings.unique} distinct', '', '',
                 f'most frequent: {top.value} ({top.frequency:,.0f})' if top else '')
    yield (split, name, dataset.num_examples, common.num_missing,
           f'{common.min_num_values}-{common.max_num_values}') + summary


def _label_chart(split_stats) -> str:
  """Label counts per split as a base64 PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 3))
  width = 0.8 / max(len(split_stats), 1)
  for i, (split, stats) in enumerate(sorted(split_stats.items())):
    counts = {}
    for feature in stats.datasets[0].features:
      if feature.path.step and feature.path.step[0] == features.LABEL_KEY:
        for value in feature.string_stats.rank_histogram.buckets:
          counts[int(value.label)] = value.sample_count
    digits = sorted(counts)
    total = sum(counts.values()) or 1
    ax.bar([d + i * width for d in digits], [counts[d] / total for d in digits],
           width=width, label=split)
  ax.set_xticks(range(features.NUM_CLASSES))
  ax.set_xlabel('digit')
  ax.set_ylabel('fraction of split')
  ax.legend()
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  plt.close(fig)
  return base64.b64encode(buffer.getvalue()).decode()


def render(split_stats, anomalies_lines) -> str:
  rows = [row for split, stats in sorted(split_stats.items())
          for row in _feature_rows(split, stats)]
  header = ('split', 'feature', 'examples', 'missing', 'values per example',
            'min', 'max', 'mean', 'zeros / top value')
  table = '<table><tr>' + ''.join(f'<th>{h}</th>' for h in header) + '</tr>' + ''.join(
      '<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>'
      for row in rows) + '</table>'
  anomalies = ('<p class="ok">No anomalies.</p>' if not anomalies_lines else
               '<ul class="bad">' + ''.join(
                   f'<li>{html.escape(line)}</li>' for line in anomalies_lines) +
               '</ul>')
  facets = ''
  if 'train' in split_stats:
    other = 'eval' if 'eval' in split_stats else None
    facets = tfdv.utils.display_util.get_statistics_html(
        split_stats['train'], split_stats.get(other) if other else None,
        lhs_name='train', rhs_name=other or 'none')
  return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>MNIST data statistics</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
.ok{{color:#080}} .bad{{color:#b00}}</style></head><body>
<h1>MNIST data statistics</h1>
<h2>Anomalies (ExampleValidator against the curated schema)</h2>{anomalies}
<h2>Features per split</h2>{table}
<h2>Label distribution</h2><img alt="label distribution" src="data:image/png;base64,{_label_chart(split_stats)}">
<h2>TFDV (Facets) view: train vs eval</h2>{facets}
</body></html>"""


def write(config: config_lib.PipelineConfig, output: Optional[str] = None) -> str:
  """Writes the report of the latest run; returns its path."""
  nodes = mlmd.latest_run(config)
  split_stats = load_split_statistics(
      _artifact_uri(config, nodes, 'StatisticsGen', 'statistics'))
  anomalies_uri = _artifact_uri(config, nodes, 'ExampleValidator', 'anomalies')
  lines = anomaly_gate.describe(anomaly_gate.load_anomalies(anomalies_uri))
  output = output or os.path.join(config.reports_dir, 'statistics.html')
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, 'w') as f:
    f.write(render(split_stats, lines))
  return output
