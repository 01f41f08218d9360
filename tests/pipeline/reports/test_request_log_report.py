"""Reading request logs back (pipeline/reports/request_log_report.py): a file
the server is still writing, and one that is not a TFRecord file."""

import pytest

from pipeline.reports import request_log_report as request_log_reader
from tests.testutil.request_logs import log_files


def test_incomplete_last_record_is_skipped_with_a_note(logged, tmp_path):
  [path] = log_files(logged['prefix'])
  data = open(path, 'rb').read()
  partial = tmp_path / 'partial.tfrecord'
  partial.write_bytes(data[:-20])  # the last record half written
  summary = request_log_reader.summarize([str(partial)])
  assert summary.total_requests == 5
  assert summary.notes == [f'{partial}: the last record is incomplete (the '
                           'server is still writing it?); read the 5 before it']
  corrupt = bytearray(data)
  corrupt[40] ^= 0xFF  # inside the first record
  (tmp_path / 'corrupt.tfrecord').write_bytes(bytes(corrupt))
  with pytest.raises(request_log_reader.RequestLogError,
                     match='corrupt after 0 records'):
    request_log_reader.summarize([str(tmp_path / 'corrupt.tfrecord')])

