"""The statistics page (`mnist-tfx stats`) of runs recorded in ML Metadata: one on
clean digits, one on digits the schema rejects, and none at all."""

import base64
import os
import re

import pytest

from components.anomaly_gate import DataAnomaliesError
from pipeline import config as config_lib
from pipeline import mlmd
from pipeline.reports import statistics_report
from tests.testutil.mnist_files import write_slice
from tests.testutil.pipeline_runs import run_validation

# Runs the pipeline, or reads the shared smoke run.
pytestmark = pytest.mark.pipeline


def _config(data_dir, output_dir, **changes):
  return config_lib.load('smoke', data_dir=data_dir, output_dir=output_dir,
                         max_train_examples=None, max_test_examples=None,
                         **changes)


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _rows(page):
  """(split, feature) -> examples, from the table of features per split."""
  return {(split, feature): int(examples) for split, feature, examples in
          re.findall(r'<tr><td>(\w+)</td><td>(\w+)</td><td>(\d+)</td>', page)}


@pytest.fixture(scope='module')
def clean_run(small_mnist_dir, tmp_path_factory):
  config = _config(small_mnist_dir, str(tmp_path_factory.mktemp('clean')),
                   valid_examples=200)
  run_validation(config)
  return config


def test_page_has_every_split_and_feature_the_labels_and_no_anomalies(clean_run):
  path = statistics_report.write(clean_run)
  assert path == os.path.join(clean_run.reports_dir, 'statistics.html')
  page = _read(path)
  assert '<p class="ok">No anomalies.</p>' in page
  # small_mnist_dir: 1200 training images (200 held out as `valid`), 300 test.
  assert _rows(page) == {
      (split, feature): count
      for split, count in (('train', 1000), ('valid', 200), ('eval', 300))
      for feature in ('image', 'label')}
  chart = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
  assert base64.b64decode(chart.group(1)).startswith(b'\x89PNG\r\n\x1a\n')
  assert 'facets-overview' in page  # TFDV's own view, train against eval


def test_anomalies_are_listed(mnist_dir, tmp_path):
  # 14x14 digits where the schema wants 784 pixels, in every split.
  data_dir = write_slice(mnist_dir, str(tmp_path / 'small14'), train=300,
                         test=100, downscale=2)
  config = _config(data_dir, str(tmp_path / 'outputs'), valid_examples=50)
  with pytest.raises(DataAnomaliesError):
    run_validation(config, image_shape=(14, 14))
  page = _read(statistics_report.write(config, str(tmp_path / 'page.html')))
  anomalies = re.search(r'<ul class="bad">(.*?)</ul>', page).group(1)
  for split in ('train', 'valid', 'eval'):
    assert f'<li>{split}: feature &#x27;image&#x27;: ' in anomalies, anomalies
  assert 'No anomalies' not in page


def test_without_a_run_it_says_to_run_first(tmp_path):
  config = _config('data/mnist', str(tmp_path))
  with pytest.raises(mlmd.MetadataError, match='no pipeline run in .*: run '
                     '`mnist-tfx run` first'):
    statistics_report.write(config)
  assert not os.path.exists(config.reports_dir)
