"""Prometheus metrics under TF Serving's names, for --monitoring_config_file.

TF Serving records, per request, a count by model and status and, for requests
that succeed, the latency in microseconds by model, API and entry point
(servables/tensorflow/util.cc: /tensorflow/serving/request_count and
/tensorflow/serving/request_latency, recorded by prediction_service_impl.cc for
gRPC and http_server.cc for REST); its exporter turns the slashes into colons
(util/prometheus_exporter.cc). The same names, labels and histogram buckets are
used here, rendered by prometheus_client at the configured path of the REST port.
The model version states, which TF Serving does not export, come under this
server's own name, :mnist_tfx:serving:model_version_state.
"""

import time
from typing import Callable, Iterable, Tuple

from prometheus_client import CollectorRegistry
from prometheus_client import exposition
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import Metric

from serving.model_servers import options as options_lib
from serving.model_servers import config_protos

REQUEST_COUNT = ':tensorflow:serving:request_count'
REQUEST_LATENCY = ':tensorflow:serving:request_latency'
VERSION_STATE = ':mnist_tfx:serving:model_version_state'
# TF Serving's buckets: 10 us, growing by 1.8, 33 of them (about 20 minutes).
LATENCY_BUCKETS = tuple(10 * 1.8 ** i for i in range(33))
CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST

# (model name, version, state name) for every version the registry knows.
VersionStates = Callable[[], Iterable[Tuple[str, int, str]]]


class _RequestCounts:
  """TF Serving's request counter: exact name, no `_total` suffix added."""

  def __init__(self):
    self.counts = {}

  def add(self, model_name: str, status: str) -> None:
    key = (model_name, status)
    self.counts[key] = self.counts.get(key, 0) + 1  # under the GIL: atomic

  def collect(self):
    metric = Metric(REQUEST_COUNT, 'The total number of requests.', 'counter')
    for (model_name, status), count in sorted(self.counts.items()):
      metric.add_sample(REQUEST_COUNT,
                        {'model_name': model_name, 'status': status}, count)
    yield metric


class _VersionStates:

  def __init__(self, states: VersionStates):
    self._states = states

  def collect(self):
    metric = GaugeMetricFamily(
        VERSION_STATE, 'Model versions by state (1: the version is in it).',
        labels=['model_name', 'version', 'state'])
    for model_name, version, state in self._states():
      metric.add_metric([model_name, str(version), state], 1)
    yield metric


class Metrics:
  """The server's metrics; `record` is called once per finished request."""

  def __init__(self, path: str, version_states: VersionStates):
    self.path = path
    self.registry = CollectorRegistry(auto_describe=False)
    self._counts = _RequestCounts()
    self.registry.register(self._counts)
    self._latency = Histogram(
        REQUEST_LATENCY,
        'Distribution of wall time (in microseconds) for Tensorflow Serving '
        'request.', ['model_name', 'API', 'entrypoint'],
        buckets=LATENCY_BUCKETS, registry=self.registry)
    self.registry.register(_VersionStates(version_states))

  def record(self, model_name: str, api: str, entrypoint: str, status: str,
             started: float) -> None:
    """status: the canonical code name (OK, NOT_FOUND, ...); started: monotonic."""
    self._counts.add(model_name, status)
    if status == 'OK':
      self._latency.labels(model_name, api, entrypoint).observe(
          (time.monotonic() - started) * 1e6)

  def render(self) -> bytes:
    return exposition.generate_latest(self.registry)


def from_options(options: options_lib.ServerOptions,
                 version_states: VersionStates):
  """Metrics if --monitoring_config_file enables Prometheus, else None."""
  if not options.monitoring_config_file:
    return None
  config = config_protos.read_text_proto(options.monitoring_config_file,
                                         config_protos.MonitoringConfig)
  prometheus = config.prometheus_config
  if not prometheus.enable:
    return None
  # TF Serving's default path (model_servers/server.cc).
  return Metrics(prometheus.path or '/monitoring/prometheus/metrics',
                 version_states)
