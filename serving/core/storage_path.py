"""TF Serving's storage contract: a model base path of numbered version folders.

`<base_path>/<version>/` holds one version, named by its integer version number
(sources/storage_path/file_system_storage_path_source.cc); anything else there
(the Pusher's hidden staging folders, stray files) is no version. The model
server, the Pusher, which numbers the next version, and the tests and benchmark,
which look for the latest, read the base path through this one function.
"""

import os
from typing import Dict

import tensorflow as tf


def version_dirs(base_path: str) -> Dict[int, str]:
  """{version: path} of the numbered folders under `base_path`, complete or not;
  none if it does not exist. Local folders and any file system TensorFlow reads
  (gs://, ...)."""
  if not tf.io.gfile.isdir(base_path):
    return {}
  try:
    names = tf.io.gfile.listdir(base_path)
  except tf.errors.NotFoundError:  # Removed since.
    return {}
  found = {}
  for name in names:
    name = name.rstrip('/')
    path = os.path.join(base_path, name)
    if name.isdigit() and tf.io.gfile.isdir(path):
      found[int(name)] = path
  return found
