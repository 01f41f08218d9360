"""Errors with TF Serving's status codes (serving/core/errors.py)."""

import grpc

from serving.core import errors


def test_error_codes_map_to_tf_serving_http_statuses():
  assert errors.http_status(grpc.StatusCode.NOT_FOUND) == 404
  assert errors.http_status(grpc.StatusCode.INVALID_ARGUMENT) == 400
  assert errors.http_status(grpc.StatusCode.FAILED_PRECONDITION) == 400
  assert errors.http_status(grpc.StatusCode.UNAVAILABLE) == 503

