"""IdxExampleGen: a TFX ExampleGen that reads MNIST IDX files with Apache Beam.

It is a FileBasedExampleGen in every respect that matters downstream -- the same
driver (input fingerprint, so a changed file invalidates the cache), the same output
layout (`Split-<name>/data_tfrecord-*.gz`, gzipped tf.Examples) and artifact
properties -- with an executor that understands the IDX format:

- `train` holds the 60k training images minus the held-out ones,
- `valid` (when valid_examples > 0) a seeded, deterministic sample of them,
- `eval` the 10k test images.

All four files are validated on the launcher before Beam starts (see components/idx.py);
the conversion itself runs in Beam workers, one element per chunk of images, each
worker reading the files it is given.
"""

import functools
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter
from tfx_bsl.coders import example_coder

from components import idx
from models import features

VALID_EXAMPLES_KEY = 'valid_examples'
SPLIT_SEED_KEY = 'split_seed'
IMAGE_ROWS_KEY = 'image_rows'
IMAGE_COLS_KEY = 'image_cols'
MAX_TRAIN_KEY = 'max_train_examples'
MAX_TEST_KEY = 'max_test_examples'

# Images per Beam element: large enough that per-element overhead vanishes, small
# enough that a runner can spread the 70k images over its workers.
CHUNK_SIZE = 2500

# File-name patterns of each part, given to the standard driver, which fingerprints
# the matching files; the executor then finds each file by its classic name (raw or
# .gz).
_PATTERNS = {'train': 'train-*-ubyte*', 'test': 't10k-*-ubyte*'}


class IdxExampleGenSpec(ComponentSpec):
  """FileBasedExampleGen's parameters plus how to read and split the IDX files."""
  PARAMETERS = {
      **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
      VALID_EXAMPLES_KEY: ExecutionParameter(type=int),
      SPLIT_SEED_KEY: ExecutionParameter(type=int),
      IMAGE_ROWS_KEY: ExecutionParameter(type=int),
      IMAGE_COLS_KEY: ExecutionParameter(type=int),
      MAX_TRAIN_KEY: ExecutionParameter(type=int, optional=True),
      MAX_TEST_KEY: ExecutionParameter(type=int, optional=True),
  }
  INPUTS = {}
  OUTPUTS = {
      standard_component_specs.EXAMPLES_KEY:
          ChannelParameter(type=standard_artifacts.Examples),
  }


# ----------------------------------------------------------------------------
# Conversion (runs in Beam workers)


@functools.lru_cache(maxsize=4)
def _load_part(images_path: str, labels_path: str,
               shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
  """Per-worker cache: each worker reads a part once, whatever its chunks."""
  return idx.load_pair(images_path, labels_path, shape)


def chunk_to_examples(images: np.ndarray, labels: np.ndarray,
                      indices: np.ndarray) -> List[bytes]:
  """The chosen digits as serialized tf.Examples, encoded in one vectorized call.

  tfx_bsl's Arrow-to-Example encoder is TFX's own C++ path, faster than building
  the protos one by one in Python as `features.example` does; the result parses
  to the same examples.
  """
  count, size = len(indices), images.shape[1]  # size: rows * cols
  pixels = images[indices].reshape(-1).astype(np.int64)
  image_column = pa.ListArray.from_arrays(
      pa.array(np.arange(0, (count + 1) * size, size, dtype=np.int32)),
      pa.array(pixels))
  label_column = pa.ListArray.from_arrays(
      pa.array(np.arange(count + 1, dtype=np.int32)),
      pa.array(labels[indices].astype(np.int64)))
  batch = pa.RecordBatch.from_arrays([image_column, label_column],
                                     [features.IMAGE_KEY, features.LABEL_KEY])
  return example_coder.RecordBatchToExamplesEncoder().encode(batch)


class _ChunkToExamples(beam.DoFn):
  """(images path, labels path, indices) -> serialized tf.Examples."""

  def __init__(self, shape: Tuple[int, int]):
    self._shape = shape

  def process(self, chunk: Tuple[str, str, np.ndarray]) -> Iterator[bytes]:
    images_path, labels_path, indices = chunk
    images, labels = _load_part(images_path, labels_path, self._shape)
    yield from chunk_to_examples(images, labels, indices)


# ----------------------------------------------------------------------------
# Planning (runs on the launcher, before Beam)


def plan_splits(input_base: str, valid_examples: int, split_seed: int,
                shape: Tuple[int, int], max_train: Optional[int] = None,
                max_test: Optional[int] = None
               ) -> Dict[str, List[Tuple[str, str, np.ndarray]]]:
  """Validates the four files and returns, per split, the chunks to convert.

  Raises idx.IdxFormatError naming the file and the defect.
  """
  parts = {}
  for part, limit in (('train', max_train), ('test', max_test)):
    images_path, labels_path = idx.locate(input_base, part)
    images, _ = _load_part(images_path, labels_path, shape)
    count = len(images) if limit is None else min(limit, len(images))
    parts[part] = (images_path, labels_path, count)
  indices = idx.example_indices(parts['train'][2], parts['test'][2],
                                valid_examples, split_seed)
  return {
      split: [(*parts[part][:2], split_indices[start:start + CHUNK_SIZE])
              for start in range(0, len(split_indices), CHUNK_SIZE)]
      for split, (part, split_indices) in indices.items()
  }


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """Writes the IDX files as train/valid/eval splits of tf.Examples."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    try:
      super().Do(input_dict, output_dict, exec_properties)
    finally:
      _load_part.cache_clear()  # The launcher process goes on to other components.

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    raise NotImplementedError(
        'IdxExampleGen splits by itself; see GenerateExamplesByBeam.')

  def GenerateExamplesByBeam(
      self, pipeline: beam.Pipeline,
      exec_properties: Dict[str, Any]) -> Dict[str, beam.pvalue.PCollection]:
    shape = (exec_properties[IMAGE_ROWS_KEY], exec_properties[IMAGE_COLS_KEY])
    plan = plan_splits(
        exec_properties[standard_component_specs.INPUT_BASE_KEY],
        valid_examples=exec_properties[VALID_EXAMPLES_KEY],
        split_seed=exec_properties[SPLIT_SEED_KEY],
        shape=shape,
        max_train=exec_properties.get(MAX_TRAIN_KEY),
        max_test=exec_properties.get(MAX_TEST_KEY))
    return {
        split: (pipeline
                | f'Chunks[{split}]' >> beam.Create(chunks, reshuffle=False)
                | f'ToExamples[{split}]' >> beam.ParDo(_ChunkToExamples(shape)))
        for split, chunks in plan.items()
    }


def input_config(valid_examples: int) -> example_gen_pb2.Input:
  """The splits IdxExampleGen writes, as FileBasedExampleGen's driver sees them."""
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split,
                                  pattern=_PATTERNS[idx.SPLIT_PARTS[split]])
      for split in idx.split_names(valid_examples)])


class IdxExampleGen(base_beam_component.BaseBeamComponent):
  """ExampleGen for a directory holding the four MNIST IDX files (raw or .gz)."""

  SPEC_CLASS = IdxExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
  DRIVER_CLASS = driver.FileBasedDriver

  def __init__(self,
               input_base: str,
               valid_examples: int = 5000,
               split_seed: int = 0,
               image_shape: Tuple[int, int] = idx.IMAGE_SHAPE,
               max_train_examples: Optional[int] = None,
               max_test_examples: Optional[int] = None):
    """Args:
      input_base: directory with train-images-idx3-ubyte[.gz],
        train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and
        t10k-labels-idx1-ubyte[.gz].
      valid_examples: how many training images to hold out as the `valid` split.
      split_seed: seed of the deterministic choice of those images.
      image_shape: (rows, columns) every image must have.
      max_train_examples, max_test_examples: keep only the first N images of
        each part (small runs and tests); None keeps all.
    """
    spec = IdxExampleGenSpec(
        input_base=input_base,
        input_config=input_config(valid_examples),
        output_config=example_gen_pb2.Output(),
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        valid_examples=valid_examples,
        split_seed=split_seed,
        image_rows=image_shape[0],
        image_cols=image_shape[1],
        max_train_examples=max_train_examples,
        max_test_examples=max_test_examples,
        custom_config=None,
        range_config=None,
        examples=types.Channel(type=standard_artifacts.Examples))
    super().__init__(spec=spec)
