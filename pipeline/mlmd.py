"""Reading what runs recorded in ML Metadata: executions, their outputs, lineage."""

import collections
import dataclasses
from typing import Dict, List, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import config as config_lib

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


def open_store(config: config_lib.PipelineConfig) -> metadata_store.MetadataStore:
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = config.metadata_path
  connection.sqlite.connection_mode = 3  # READWRITE_OPENCREATE
  return metadata_store.MetadataStore(connection)


def _output_key(event: metadata_store_pb2.Event) -> str:
  steps = [s.key for s in event.path.steps if s.HasField('key')]
  return steps[0] if steps else '?'


def latest_run(config: config_lib.PipelineConfig) -> List[NodeRun]:
  """The executions of the most recent pipeline run, in the order they started."""
  store = open_store(config)
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    return []
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


def latest_outputs(config: config_lib.PipelineConfig) -> Dict[str, List[Tuple[str, str]]]:
  """node id -> [(output key, artifact uri)] for the most recent run."""
  return {
      node.node_id: [(key, artifact.uri) for key, artifact in node.outputs]
      for node in latest_run(config)
  }
