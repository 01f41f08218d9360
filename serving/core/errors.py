"""Errors with TF Serving's status codes, shared by the gRPC and REST front ends.

Every failure a request can meet is raised as a `ServingError` carrying the gRPC
status code TF Serving gives for it, so both APIs answer the same way: gRPC returns
the code, REST maps it to the HTTP status TF Serving's HTTP server uses
(tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
"""

import grpc

Code = grpc.StatusCode

# TF Serving's HTTP status for each canonical code.
_HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

# TensorFlow's error codes are the canonical codes, numbered as gRPC numbers them.
_BY_NUMBER = {code.value[0]: code for code in Code}


class ServingError(Exception):
  """A request failed with `code`; `message` says what was expected."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  @property
  def http_status(self) -> int:
    return http_status(self.code)

  def __repr__(self):
    return f'ServingError({self.code.name}, {self.message!r})'


def http_status(code: grpc.StatusCode) -> int:
  return _HTTP_STATUS.get(code, 500)


def invalid_argument(message: str) -> ServingError:
  return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
  return ServingError(Code.NOT_FOUND, message)


def from_exception(error: BaseException) -> ServingError:
  """Turns anything a model run raised into a ServingError, keeping TF's code.

  A TensorFlow OpError (e.g. a serialized tf.Example that does not parse) keeps its
  own code; its message is cut to the lines that say what was wrong, without
  TensorFlow's "Graph execution error" preamble, stack and node names.
  """
  if isinstance(error, ServingError):
    return error
  if isinstance(error, UnicodeDecodeError) and isinstance(error.object, bytes):
    # TensorFlow could not turn its own error message into text, because the
    # message quotes the request's bytes: ParseExample's "Could not parse
    # example input, value: '...'" for a serialized input that is no
    # tf.Example. TF Serving answers that as the op does, INVALID_ARGUMENT.
    message = error.object.decode('utf-8', 'replace')
    if message.startswith('Could not parse example input'):
      # Up to the node name; the quoted bytes may hold line breaks.
      return ServingError(Code.INVALID_ARGUMENT,
                          message.split('\n\t [[')[0].split('\t [[')[0])
  code_number = getattr(error, 'error_code', None)
  message = getattr(error, 'message', None) or str(error) or type(error).__name__
  if code_number is not None:
    return ServingError(_BY_NUMBER.get(code_number, Code.UNKNOWN),
                        _essential(message))
  if isinstance(error, MemoryError):
    return ServingError(Code.RESOURCE_EXHAUSTED,
                        'out of memory while running the request')
  return ServingError(Code.INTERNAL, f'{type(error).__name__}: {message}')


_NOISE = ('Graph execution error', 'Detected at node', '<stack traces',
          'File "', '[[', '[Op:')


def _essential(message: str) -> str:
  """'Feature: image ... could not be found' out of a TensorFlow error message."""
  lines = [line.strip() for line in message.splitlines()]
  kept = [line for line in lines
          if line and not line.startswith(_NOISE) and not line.startswith('  ')]
  # Stack frames follow "defined at"; the error proper comes last.
  text = kept[-1] if kept else (lines[0] if lines else message)
  return text.split('\t [[')[0].split(' [[')[0].strip() or message.strip()
