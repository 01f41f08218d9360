"""A Pusher executor that TF Serving can never catch half-way, and that never pushes
the model it is already serving.

TFX's stock Pusher copies the model straight into `<base>/<unix time>/`, writing
`saved_model.pb` last. A server polling the base path can still see the version
directory before it is complete, and a re-run in which nothing changed (the baseline
Resolver then hands the candidate to itself, the Evaluator blesses it again) pushes
the same model under a new version. This executor, used with the standard Pusher
component, instead:

- numbers versions max(existing) + 1, so they only grow, whatever the clock says;
- writes into a hidden temporary directory beside the versions (TF Serving only
  looks at numeric directory names) and renames it into place, one atomic step on a
  local or mounted POSIX file system; on object stores, where a directory rename is
  a copy, it falls back to writing `saved_model.pb` last, as TFX does;
- compares the SavedModel fingerprint (`fingerprint.pb`, written by TensorFlow at
  save time) with that of the newest version, and records "already serving as
  version N" instead of pushing a duplicate.
"""

import os
import uuid
from typing import Any, Dict, List, Optional

from absl import logging
import tensorflow as tf
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from serving.core import storage_path

FINGERPRINT_FILE = 'fingerprint.pb'
SAVED_MODEL_FILE = 'saved_model.pb'


def versions(base_path: str) -> List[int]:
  """The version numbers under a TF Serving model base path, ascending; complete
  or not, since the next version must not collide with any of them."""
  return sorted(storage_path.version_dirs(base_path))


def _read(path: str) -> Optional[bytes]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path, 'rb') as f:
    return f.read()


def _copy_tree(source: str, target: str, last: Optional[str] = None) -> None:
  """Copies a directory tree, the file named `last` (at the top) at the end."""
  deferred = None
  for directory, _, files in tf.io.gfile.walk(source):
    relative = os.path.relpath(directory, source)
    target_dir = os.path.normpath(os.path.join(target, relative))
    tf.io.gfile.makedirs(target_dir)
    for name in files:
      if relative == '.' and name == last:
        deferred = (os.path.join(directory, name), os.path.join(target_dir, name))
        continue
      tf.io.gfile.copy(os.path.join(directory, name),
                       os.path.join(target_dir, name), overwrite=True)
  if deferred:
    tf.io.gfile.copy(*deferred, overwrite=True)


def push(model_dir: str, base_path: str) -> Dict[str, Any]:
  """Pushes the SavedModel in `model_dir` as the next version under `base_path`.

  Returns {'version': int, 'path': str, 'pushed': bool}; pushed is False when the
  newest version already holds this very model.
  """
  existing = versions(base_path)
  fingerprint = _read(os.path.join(model_dir, FINGERPRINT_FILE))
  if existing and fingerprint is not None:
    newest = os.path.join(base_path, str(existing[-1]))
    if _read(os.path.join(newest, FINGERPRINT_FILE)) == fingerprint:
      return {'version': existing[-1], 'path': newest, 'pushed': False}
  version = (existing[-1] + 1) if existing else 1
  final = os.path.join(base_path, str(version))
  tf.io.gfile.makedirs(base_path)
  if '://' in base_path:
    _copy_tree(model_dir, final, last=SAVED_MODEL_FILE)
  else:
    staging = os.path.join(base_path, f'.pushing-{version}-{uuid.uuid4().hex}')
    try:
      _copy_tree(model_dir, staging)
      os.rename(staging, final)  # Fails, leaving `final` alone, if it appeared.
    finally:
      if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
  return {'version': version, 'path': final, 'pushed': True}


class Executor(pusher_executor.Executor):
  """The standard Pusher's contract (blessing check, pushed_model artifact and its
  pushed / pushed_version / pushed_destination properties) with an atomic push."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError('only filesystem push destinations are supported')
    result = push(self.GetModelPath(input_dict),
                  destination.filesystem.base_directory)
    if result['pushed']:
      logging.info('Pushed version %d to %s', result['version'], result['path'])
    else:
      logging.info('Model already serving as version %d; nothing pushed',
                   result['version'])
    model_push.set_int_custom_property('pushed_new_version', int(result['pushed']))
    self._MarkPushed(model_push, pushed_destination=result['path'],
                     pushed_version=str(result['version']))
