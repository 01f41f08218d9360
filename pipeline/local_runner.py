"""Runs the pipeline on this machine: TFX's LocalDagRunner, Beam's DirectRunner, and
ML Metadata in SQLite. Only paths, metadata and the orchestrator are chosen here;
the pipeline itself comes from pipeline.create_pipeline.
"""

import logging
import re
import time
from typing import Callable, Dict, List, Optional

from absl import logging as absl_logging
from tfx import v1 as tfx

from pipeline import beam_options  # pylint: disable=unused-import (registers the option)
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib

_RUNNING = re.compile(r'^Component (\S+) is running\.$')
_FINISHED = re.compile(r'^Component (\S+) is finished\.$')
_CACHED = re.compile(r'^A cached execution (\d+) is used\.$')
_EPOCH = re.compile(r'^Epoch \d+/\d+: ')  # models/trainer/progress.py


class ProgressPrinter(logging.Handler):
  """Turns LocalDagRunner's log lines into one progress line per component, and
  passes on the Trainer's line per epoch.

  LocalDagRunner offers no callbacks, but logs when each component starts and
  finishes (and when a cached result is reused); we time those.
  """

  def __init__(self, total: int, out: Callable[[str], None]):
    super().__init__(level=logging.INFO)
    self.total = total
    self.out = out
    self.times: Dict[str, float] = {}
    self.cached: List[str] = []
    self._current: Optional[str] = None
    self._started = 0.0

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    if m := _RUNNING.match(message):
      self._current, self._started = m.group(1), time.monotonic()
      self.out(f'[{len(self.times) + 1}/{self.total}] {self._current} ...')
    elif _EPOCH.match(message):
      self.out(f'      {message}')
    elif _CACHED.match(message) and self._current:
      self.cached.append(self._current)
    elif (m := _FINISHED.match(message)) and m.group(1) == self._current:
      seconds = time.monotonic() - self._started
      self.times[self._current] = seconds
      note = ' (cached)' if self._current in self.cached else ''
      self.out(f'[{len(self.times)}/{self.total}] {self._current} done in '
               f'{seconds:.1f} s{note}')
      self._current = None


def metadata_config(config: config_lib.PipelineConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(
      config.metadata_path)


def build(config: config_lib.PipelineConfig) -> tfx.dsl.Pipeline:
  return pipeline_lib.create_pipeline(
      config,
      pipeline_root=config.pipeline_root,
      data_dir=config.abs_data_dir,
      serving_root=config.serving_root,
      metadata_connection_config=metadata_config(config),
      beam_pipeline_args=config.beam.pipeline_args())


def run(config: config_lib.PipelineConfig,
        out: Callable[[str], None] = print) -> Dict[str, float]:
  """Runs the pipeline; returns wall seconds per component that ran."""
  pipeline = build(config)
  progress = ProgressPrinter(len(pipeline.components), out)
  absl_logger = logging.getLogger('absl')
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)  # the lines progress is read from
  absl_logger.addHandler(progress)
  try:
    tfx.orchestration.LocalDagRunner().run(pipeline)
  finally:
    absl_logger.removeHandler(progress)
    absl_logging.set_verbosity(verbosity)
  return progress.times
