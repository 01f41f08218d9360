"""Reading what runs recorded in ML Metadata: executions, their outputs, lineage."""

import collections
import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import config as config_lib
from pipeline.errors import UserError

_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT,
                  metadata_store_pb2.Event.DECLARED_OUTPUT)
_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class NodeRun:
  """One component's execution in a pipeline run."""
  node_id: str
  state: str  # COMPLETE, CACHED, FAILED, RUNNING ...
  seconds: float
  outputs: List[Tuple[str, metadata_store_pb2.Artifact]]


class MetadataError(UserError):
  """No run recorded, or a metadata file that ML Metadata cannot read."""


def no_run_error(config: config_lib.PipelineConfig) -> MetadataError:
  return MetadataError(f'no pipeline run in {config.abs_output_dir}: run '
                       '`mnist-tfx run` first')


def open_store(config: config_lib.PipelineConfig) -> metadata_store.MetadataStore:
  """Opens the run's ML Metadata read-only: reading never creates or changes it.

  Raises MetadataError when there is no metadata file or it is not a database ML
  Metadata can read.
  """
  path = config.metadata_path
  if not os.path.isfile(path):
    raise no_run_error(config)
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = path
  connection.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  try:
    store = metadata_store.MetadataStore(connection)
    store.get_context_types()  # reads the schema: fails on a file that is not one
  except (RuntimeError, errors.StatusError) as e:
    # SQLite's own words ("file is not a database"), without the query they
    # come wrapped in.
    found = re.search(r'query: (.+?) query:', str(e))
    reason = found.group(1) if found else (str(e).strip() or type(e).__name__)
    raise MetadataError(
        f'{path} is not a readable ML Metadata database ({reason}): move it away '
        'and run `mnist-tfx run` again') from None
  return store


def _output_key(event: metadata_store_pb2.Event) -> str:
  steps = [s.key for s in event.path.steps if s.HasField('key')]
  return steps[0] if steps else '?'


def latest_run(config: config_lib.PipelineConfig) -> List[NodeRun]:
  """The executions of the most recent pipeline run, in the order they started."""
  store = open_store(config)
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    raise no_run_error(config)
  run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: (e.create_time_since_epoch, e.id))
  if not executions:
    return []
  events = store.get_events_by_execution_ids([e.id for e in executions])
  artifact_ids = {e.artifact_id for e in events if e.type in _OUTPUT_EVENTS}
  artifacts = {a.id: a for a in store.get_artifacts_by_id(list(artifact_ids))}
  outputs = collections.defaultdict(list)
  for event in events:
    if event.type in _OUTPUT_EVENTS and event.artifact_id in artifacts:
      outputs[event.execution_id].append(
          (_output_key(event), artifacts[event.artifact_id]))
  result = []
  for execution in executions:
    node_id = _node_id(store, execution, config.pipeline_name)
    result.append(NodeRun(
        node_id=node_id,
        state=_STATES.get(execution.last_known_state, '?'),
        seconds=(execution.last_update_time_since_epoch -
                 execution.create_time_since_epoch) / 1000.0,
        outputs=outputs[execution.id]))
  return result


def _node_id(store, execution, pipeline_name: str) -> str:
  for context in store.get_contexts_by_execution(execution.id):
    if context.name.startswith(pipeline_name + '.'):
      return context.name[len(pipeline_name) + 1:]
  return execution.name or str(execution.id)


def output(nodes: List[NodeRun], node_id: str,
           key: str) -> Optional[metadata_store_pb2.Artifact]:
  """The artifact `node_id` wrote under `key` in `nodes` (a run, as latest_run
  returns it); None when that node did not run or wrote no such output."""
  for node in nodes:
    if node.node_id == node_id:
      return dict(node.outputs).get(key)
  return None


def latest_outputs(config: config_lib.PipelineConfig) -> Dict[str, List[Tuple[str, str]]]:
  """node id -> [(output key, artifact uri)] for the most recent run."""
  return {
      node.node_id: [(key, artifact.uri) for key, artifact in node.outputs]
      for node in latest_run(config)
  }


def _pushed_versions(store, base_path: str):
  """PushedModel artifacts that point into `base_path`: version -> artifact."""
  found = {}
  for artifact in store.get_artifacts_by_type('PushedModel'):
    props = artifact.custom_properties
    if 'pushed_version' in props and 'pushed_destination' in props and (
        os.path.dirname(props['pushed_destination'].string_value) == base_path):
      found.setdefault(int(props['pushed_version'].string_value), artifact)
  return found


def serving_lineage(config: config_lib.PipelineConfig,
                    version: Optional[int] = None) -> List[str]:
  """Walks ML Metadata upstream from the pushed model to the IDX files.

  Every execution on the way is listed with its component, state and the
  artifacts it read, so one can tell which data, schema, Transform graph and
  Trainer run produced the version that is serving.
  """
  from components import atomic_pusher  # pylint: disable=g-import-not-at-top
  store = open_store(config)
  base_path = config.model_base_path
  on_disk = atomic_pusher.versions(base_path)
  if not on_disk:
    raise MetadataError(f'no model pushed to {base_path}: the runs so far pushed '
                        'nothing (`mnist-tfx report` says why)')
  version = on_disk[-1] if version is None else version
  if version not in on_disk:
    raise MetadataError(f'no version {version} in {base_path}: it holds '
                        f'{", ".join(map(str, on_disk))}')
  pushed = _pushed_versions(store, base_path)
  if version not in pushed:
    raise MetadataError(
        f'version {version} in {base_path} is not recorded in '
        f'{config.metadata_path}: it was not pushed by this pipeline')
  lines = [f'{base_path}/{version} (serving)' +
           (' -- the newest version' if version == on_disk[-1] else '')]
  seen = set()

  def walk(artifact_id: int, depth: int):
    events = store.get_events_by_artifact_ids([artifact_id])
    producers = store.get_executions_by_id(
        [e.execution_id for e in events if e.type in _OUTPUT_EVENTS])
    # A cached execution re-publishes the artifact of the one that made it; the
    # lineage is the latter's.
    made = [e for e in producers
            if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    for execution in made or producers:
      indent = '  ' * depth
      name = _node_id(store, execution, config.pipeline_name)
      if execution.id in seen:
        lines.append(f'{indent}<- {name} (execution {execution.id}, above)')
        continue
      seen.add(execution.id)
      state = _STATES.get(execution.last_known_state, '?')
      lines.append(f'{indent}<- {name} (execution {execution.id}, {state.lower()})')
      for key in ('input_base', 'input_fingerprint'):
        if key in execution.properties or key in execution.custom_properties:
          value = (execution.properties.get(key) or
                   execution.custom_properties.get(key))
          text = value.string_value.replace('\n', f'\n{indent}       ')
          lines.append(f'{indent}     {key}: {text}')
      inputs = [e for e in store.get_events_by_execution_ids([execution.id])
                if e.type == metadata_store_pb2.Event.INPUT]
      artifacts = {a.id: a for a in store.get_artifacts_by_id(
          [e.artifact_id for e in inputs])}
      types = {t.id: t.name for t in store.get_artifact_types_by_id(
          list({a.type_id for a in artifacts.values()}))}
      for event in inputs:
        artifact = artifacts[event.artifact_id]
        lines.append(f'{indent}   {_output_key(event)}: '
                     f'{types[artifact.type_id]} {artifact.uri}')
        walk(artifact.id, depth + 2)

  walk(pushed[version].id, 1)
  return lines
