"""Which model versions are served: version policy, loading, watching, hot swap.

TF Serving's storage contract: a model's base path holds one directory per version,
named by its integer version number (`<base_path>/<version>/saved_model.pb`,
storage_path.py). The registry polls every base path; the model's version
policy (TF Serving's ServableVersionPolicy: the latest N versions, the default
being the latest one; all; or specific versions) picks the versions to serve among
those on disk.

A newly wanted version is loaded and warmed up in the background while the current
ones keep answering; only then is it published, by replacing the model's
version -> Servable mapping in one assignment, so a request sees either the old
mapping or the new one and never a half-loaded model. Versions no longer wanted are
unloaded after that, so the model is never without a version (TF Serving's
availability-preserving policy). A version that fails to load is retried a few
times and then left alone, and the versions already serving stay up.

Requests name a model and optionally a version or a version label (labels come from
the model config, e.g. stable -> 3); no version means the latest served version.

The registry knows versions, not SavedModels: a `Loader` (serving/servables/
loader.py) says which version folders are complete and turns one into a servable,
as TF Serving's AspiredVersionsManager (core/) drives the loaders its source
adapters (servables/tensorflow/) make. So this layer imports nothing above it.

A model's `logging_config` (TF Serving's request logging) is kept here too: the
registry's ServerRequestLogger (serving/core/request_logging.py) is updated from the
model configs at start and at every reconfigure, as TF Serving's ServerCore does
(MaybeUpdateServerRequestLogger), and closed at stop.
"""

import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Protocol,
                    Sequence, Set, Tuple)

from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.core import errors
from serving.core import request_logging
from serving.core import storage_path

State = get_model_status_pb2.ModelVersionStatus.State
# A loaded version: anything with name, version and close() (a Servable).
Servable = Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
  """TF Serving's ServableVersionPolicy: 'latest' (N), 'all' or 'specific'."""

  kind: str = 'latest'
  num_versions: int = 1
  versions: Tuple[int, ...] = ()

  def __post_init__(self):
    if self.kind not in ('latest', 'all', 'specific'):
      raise ValueError(f'unknown version policy {self.kind!r}')
    if self.kind == 'latest' and self.num_versions < 1:
      raise ValueError('latest policy needs num_versions >= 1')
    if self.kind == 'specific' and not self.versions:
      raise ValueError('specific policy needs at least one version')

  def select(self, on_disk: Iterable[int]) -> Set[int]:
    on_disk = sorted(set(on_disk))
    if self.kind == 'latest':
      return set(on_disk[-self.num_versions:])
    if self.kind == 'all':
      return set(on_disk)
    return set(on_disk) & set(self.versions)

  @classmethod
  def parse(cls, text: str) -> 'VersionPolicy':
    """'latest', 'latest:2', 'all' or 'specific:1,3' (for command lines)."""
    kind, _, arg = text.partition(':')
    if kind == 'latest':
      return cls('latest', int(arg) if arg else 1)
    if kind == 'all' and not arg:
      return cls('all')
    if kind == 'specific' and arg:
      return cls('specific', versions=tuple(int(v) for v in arg.split(',')))
    raise ValueError(
        f'version policy {text!r}: expected latest[:N], all or specific:V1,V2')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """One served model: TF Serving's ModelConfig, the fields that matter here."""

  name: str
  base_path: str
  policy: VersionPolicy = VersionPolicy()
  labels: Mapping[str, int] = dataclasses.field(default_factory=dict)
  # TF Serving's LoggingConfig (request logging), or None: no logging.
  logging: Optional[request_logging.LoggingConfig] = None


def read_model_config_file(path: str) -> List[ModelConfig]:
  """Reads TF Serving's --model_config_file (a text ModelServerConfig); a file
  that does not parse raises text_format.ParseError."""
  config = model_server_config_pb2.ModelServerConfig()
  with open(path) as f:
    text_format.Parse(f.read(), config)
  return model_configs(config, path)


def model_configs(config: model_server_config_pb2.ModelServerConfig,
                  source: str = 'model config') -> List[ModelConfig]:
  """The models of a ModelServerConfig (file or HandleReloadConfigRequest)."""
  if config.WhichOneof('config') != 'model_config_list':
    raise ValueError(
        f'{source}: ServerModelConfig type not supported. Only ModelConfigList '
        'is currently supported')
  models = []
  for model in config.model_config_list.config:
    if model.model_platform not in ('', 'tensorflow'):
      raise ValueError(f'{source}: model {model.name!r} has platform '
                       f'{model.model_platform!r}; only tensorflow is served')
    which = model.model_version_policy.WhichOneof('policy_choice')
    if which == 'all':
      policy = VersionPolicy('all')
    elif which == 'specific':
      policy = VersionPolicy(
          'specific', versions=tuple(model.model_version_policy.specific.versions))
    elif which == 'latest':
      policy = VersionPolicy(
          'latest', model.model_version_policy.latest.num_versions or 1)
    else:
      policy = VersionPolicy()
    logging_config = None
    if model.HasField('logging_config'):
      logging_config = request_logging.LoggingConfig()
      logging_config.CopyFrom(model.logging_config)
      request_logging.check_config(
          logging_config, f'{source}: model {model.name!r} logging_config')
    models.append(ModelConfig(model.name, model.base_path, policy,
                              dict(model.version_labels), logging_config))
  return models


class Loader(Protocol):
  """Turns version folders into servables (TF Serving's Loader and its source
  adapter): serving/servables/loader.py for SavedModels."""

  def is_complete(self, path: str) -> bool:
    """Whether the folder holds a whole version (not one being written)."""

  def load(self, name: str, version: int, path: str) -> Servable:
    """The loaded, warmed-up version; raises when it cannot be served."""


class _Model:
  """Mutable state of one model; `available` is only ever replaced, not edited."""

  def __init__(self, config: ModelConfig):
    self.config = config
    self.available: Dict[int, Servable] = {}
    self.statuses: Dict[int, Tuple[int, str]] = {}  # version -> (state, error)
    self.failures: Dict[int, int] = {}
    self.failed_at: Dict[int, float] = {}  # monotonic time of the last failure
    self.warned_empty = False


def _status_proto(version: int, state: int, error: str
                  ) -> get_model_status_pb2.ModelVersionStatus:
  status = get_model_status_pb2.ModelVersionStatus(version=version, state=state)
  status.status.SetInParent()  # TF Serving always reports it, OK included.
  if error:
    status.status.error_code = errors.Code.UNKNOWN.value[0]
    status.status.error_message = error
  return status


class ModelRegistry:
  """The served models and versions; resolves ModelSpecs to loaded Servables."""

  def __init__(self, models: Sequence[ModelConfig], loader: Loader, *,
               poll_seconds: float, max_load_retries: int,
               retry_seconds: float, load_threads: int,
               labels_need_versions: bool, saved_model_tags: Sequence[str]):
    """The settings are the server's flags (serving/model_servers/server.py
    passes them): --file_system_poll_wait_seconds, --max_num_load_retries,
    --load_retry_interval_micros (in seconds here), --num_load_threads, not
    --allow_version_labels_for_unavailable_models, --saved_model_tags (for the
    request logs' metadata)."""
    names = [m.name for m in models]
    if len(set(names)) != len(names):
      raise ValueError(f'model names must be unique, got {names}')
    self._models = {m.name: _Model(m) for m in models}
    self.loader = loader
    self._poll_seconds = poll_seconds
    self._max_load_retries = max_load_retries
    self._retry_seconds = max(retry_seconds, 0)
    self._labels_need_versions = labels_need_versions
    self._load_threads = load_threads
    self.request_logger = request_logging.ServerRequestLogger(saved_model_tags)
    self._lock = threading.Lock()
    self._poll_lock = threading.Lock()
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  # --- lifecycle ----------------------------------------------------------
  def start(self) -> None:
    """Loads what is on disk now, then watches the base paths (if polling).

    Raises ValueError when a version label names a version that did not load
    (TF Serving refuses such labels unless
    --allow_version_labels_for_unavailable_models), or when a model's
    logging_config cannot be written.
    """
    self._update_request_logger(m.config for m in self._models.values())
    self.poll()
    self._check_labels(self._models.values())
    if self._poll_seconds > 0:
      self._thread = threading.Thread(
          target=self._watch, name='model-registry', daemon=True)
      self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    if self._thread:
      self._thread.join(timeout=30)
    for model in self._models.values():
      servables, model.available = model.available, {}
      for servable in servables.values():
        servable.close()
    self.request_logger.close()

  def _update_request_logger(self, configs: Iterable[ModelConfig]) -> None:
    self.request_logger.update({c.name: c.logging for c in configs})

  def reconfigure(self, models: Sequence[ModelConfig]) -> None:
    """Serves `models` from now on: new ones are loaded before this returns,
    models no longer listed are unloaded, labels, policies and logging configs
    are replaced (TF Serving's ServerCore::ReloadConfig)."""
    names = [m.name for m in models]
    if len(set(names)) != len(names):
      raise ValueError(f'model names must be unique, got {names}')
    with self._poll_lock:
      current = self._models
      kept = {}
      for config in models:
        model = current.get(config.name)
        if model is None:
          log.info('adding model %r from %s', config.name, config.base_path)
          model = _Model(config)
        elif model.config != config:
          model.config = config
        kept[config.name] = model
      for config in models:
        self._poll_model(kept[config.name])
      self._check_labels(kept.values())
      removed = [m for name, m in current.items() if name not in kept]
      with self._lock:
        self._models = kept
      for model in removed:
        log.info('removing model %r', model.config.name)
        self._unload_all(model)
      self._update_request_logger(models)

  def _check_labels(self, models) -> None:
    if not self._labels_need_versions:
      return
    for model in models:
      for label, version in model.config.labels.items():
        if version not in model.available:
          raise ValueError(
              f'Request to assign label to version {version} of model '
              f'{model.config.name}, which is not currently available for '
              f'inference (label {label!r})')

  def _unload_all(self, model: _Model) -> None:
    old, model.available = model.available, {}
    for version, servable in old.items():
      self._set_status(model, version, State.UNLOADING)
      servable.close()
      self._set_status(model, version, State.END)

  def version_states(self):
    """(model name, version, state name) of every version seen, for metrics."""
    with self._lock:
      models = list(self._models.values())
      return [(m.config.name, version, State.Name(state))
              for m in models for version, (state, _) in sorted(m.statuses.items())]

  def _watch(self) -> None:
    while not self._stop.wait(self._poll_seconds):
      try:
        self.poll()
      except Exception:  # pylint: disable=broad-except
        log.exception('polling the model base paths failed; retrying')

  def poll(self) -> None:
    """One pass: load newly wanted versions, then unload unwanted ones; the
    models side by side on --num_load_threads threads (0: one after another)."""
    with self._poll_lock:
      models = list(self._models.values())
      if self._load_threads > 1 and len(models) > 1:
        with concurrent.futures.ThreadPoolExecutor(
            self._load_threads, thread_name_prefix='model-load') as pool:
          for done in [pool.submit(self._poll_model, m) for m in models]:
            done.result()
      else:
        for model in models:
          self._poll_model(model)

  def _poll_model(self, model: _Model) -> None:
    config = model.config
    # Only complete SavedModels: a version folder being written is not one yet.
    on_disk = {version: path for version, path
               in storage_path.version_dirs(config.base_path).items()
               if self.loader.is_complete(path)}
    if not on_disk and not model.warned_empty:
      log.warning('no versions of model %r found under %s', config.name,
                  config.base_path)
    model.warned_empty = not on_disk
    for version in [v for v in model.failures if v not in on_disk]:
      del model.failures[version]  # Pushed again later: a fresh start.
    wanted = config.policy.select(on_disk)
    for version in sorted(wanted - set(model.available), reverse=True):
      if self._stop.is_set():
        return
      failures = model.failures.get(version, 0)
      if failures > self._max_load_retries:
        continue
      if failures and time.monotonic() - model.failed_at.get(version, 0) < (
          self._retry_seconds):
        continue  # --load_retry_interval_micros not over yet
      self._load(model, version, on_disk[version])
    # Unload what is no longer wanted, but never the last version standing
    # unless it left the disk.
    wanted_up = wanted & set(model.available)
    retire = [v for v in model.available
              if v not in on_disk or (v not in wanted and wanted_up)]
    if retire:
      old = model.available
      self._publish(model, {v: s for v, s in old.items() if v not in retire})
      for version in retire:
        # Requests that already hold this servable finish on it (their own
        # threads run its batches); it is freed when the last one lets go.
        log.info('unloading model %r version %d', config.name, version)
        self._set_status(model, version, State.UNLOADING)
        old[version].close()
        self._set_status(model, version, State.END)

  def _load(self, model: _Model, version: int, path: str) -> None:
    name = model.config.name
    self._set_status(model, version, State.LOADING)
    started = time.monotonic()
    try:
      servable = self.loader.load(name, version, path)
    except Exception as e:  # pylint: disable=broad-except
      failures = model.failures.get(version, 0) + 1
      model.failures[version] = failures
      model.failed_at[version] = time.monotonic()
      message = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}'
      log.error('loading model %r version %d from %s failed (attempt %d of %d): '
                '%s', name, version, path, failures, self._max_load_retries + 1,
                message)
      self._set_status(model, version, State.END, message)
      return
    new = dict(model.available)
    new[version] = servable
    self._publish(model, new)
    self._set_status(model, version, State.AVAILABLE)
    log.info('model %r version %d available (loaded in %.2f s)', name, version,
             time.monotonic() - started)

  def _publish(self, model: _Model,
               available: Dict[int, Servable]) -> None:
    with self._lock:
      model.available = available

  def _set_status(self, model: _Model, version: int, state: int,
                  error: str = '') -> None:
    with self._lock:
      model.statuses[version] = (state, error)

  # --- requests -------------------------------------------------------------
  def resolve(self, spec: model_pb2.ModelSpec) -> Servable:
    """The Servable a request's ModelSpec selects, or NOT_FOUND as TF Serving."""
    model = self._models.get(spec.name)
    available = model.available if model else {}
    choice = spec.WhichOneof('version_choice')
    if choice == 'version':
      version = spec.version.value
      servable = available.get(version)
      if servable is None:
        raise errors.not_found(
            f'Servable not found for request: Specific({spec.name}, {version})')
      return servable
    if choice == 'version_label':
      labels = model.config.labels if model else {}
      if spec.version_label not in labels:
        raise errors.invalid_argument(
            f'Unrecognized servable version label: {spec.version_label}')
      version = labels[spec.version_label]
      servable = available.get(version)
      if servable is None:
        raise errors.not_found(
            f'Servable not found for request: Specific({spec.name}, {version})')
      return servable
    if not available:
      raise errors.not_found(
          f'Servable not found for request: Latest({spec.name})')
    return available[max(available)]

  def version_statuses(self, name: str, version: Optional[int] = None
                       ) -> List[get_model_status_pb2.ModelVersionStatus]:
    """GetModelStatus: every version the model has seen, or one of them."""
    model = self._models.get(name)
    with self._lock:
      statuses = dict(model.statuses) if model else {}
    if version is not None:
      if version not in statuses:
        raise errors.not_found(
            f'Could not find version {version} of model {name}')
      return [_status_proto(version, *statuses[version])]
    if not statuses:
      raise errors.not_found(f'Could not find any versions of model {name}')
    return [_status_proto(v, *statuses[v]) for v in sorted(statuses)]

  def servables(self, name: str) -> Dict[int, Servable]:
    model = self._models.get(name)
    return dict(model.available) if model else {}
