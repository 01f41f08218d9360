"""Reading and validating MNIST IDX files, raw or gzipped.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a big-endian header -- a magic
number whose third byte is the element type (0x08 = unsigned byte) and whose fourth is
the number of dimensions, then one uint32 per dimension -- followed by the raw data.

Everything that can be wrong with such a file is checked here, before any example is
written, and reported as an `IdxFormatError` that names the file and the defect, so a
truncated download or a swapped file fails the pipeline at its first step.
"""

import dataclasses
import gzip
import os
import zlib
from typing import Dict, List, Tuple

import numpy as np

from models import features

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.

# The classic file names; each may also end in `.gz`.
FILE_NAMES: Dict[str, Tuple[str, str]] = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
# The splits of the examples and the part each is drawn from: `valid` is held out
# of the training images, `eval` is the test images.
SPLIT_PARTS: Dict[str, str] = {'train': 'train', 'valid': 'train', 'eval': 'test'}
IMAGE_SHAPE = (features.IMAGE_ROWS, features.IMAGE_COLS)


class IdxFormatError(ValueError):
  """An IDX file is missing or malformed; the message names the file."""


def _is_remote(path: str) -> bool:
  return '://' in path


def _exists(path: str) -> bool:
  if _is_remote(path):  # gs://, s3://, hdfs://: through TensorFlow's file systems
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
  return os.path.isfile(path)


def _read(path: str) -> bytes:
  if _is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()
  with open(path, 'rb') as f:
    return f.read()


def find_file(directory: str, name: str) -> str:
  """Returns the path of `name` or `name.gz` in `directory` (local or a URI)."""
  for candidate in (name, name + '.gz'):
    path = os.path.join(directory, candidate)
    if _exists(path):
      return path
  raise IdxFormatError(
      f'{name}: not found in {directory} (looked for {name} and {name}.gz)')


def read_bytes(path: str) -> bytes:
  """Returns the content of an IDX file, decompressing `.gz` files."""
  name = os.path.basename(path)
  data = _read(path)
  if path.endswith('.gz') or data[:2] == b'\x1f\x8b':
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise IdxFormatError(f'{name}: not a readable gzip file ({e})') from e
  return data


@dataclasses.dataclass(frozen=True)
class IdxHeader:
  magic: int
  dims: Tuple[int, ...]
  data_offset: int


def parse_header(name: str, data: bytes, expected_magic: int) -> IdxHeader:
  """Parses and checks the magic number and dimensions of an IDX file."""
  kind = 'images' if expected_magic == IMAGES_MAGIC else 'labels'
  if len(data) < 4:
    raise IdxFormatError(
        f'{name}: file holds {len(data)} bytes, too short for an IDX header')
  magic = int.from_bytes(data[:4], 'big')
  if magic != expected_magic:
    raise IdxFormatError(
        f'{name}: magic number is {magic}, expected {expected_magic} '
        f'(IDX unsigned-byte {kind})')
  ndim = data[3]
  offset = 4 + 4 * ndim
  if len(data) < offset:
    raise IdxFormatError(
        f'{name}: file holds {len(data)} bytes, too short for its '
        f'{offset}-byte header')
  dims = tuple(
      int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  return IdxHeader(magic=magic, dims=dims, data_offset=offset)


def _check_length(name: str, data: bytes, header: IdxHeader, kind: str):
  count, item_size = header.dims[0], int(np.prod(header.dims[1:], dtype=np.int64))
  payload = len(data) - header.data_offset
  if payload != count * item_size:
    held = payload / item_size
    held_text = f'{held:.1f}'.rstrip('0').rstrip('.') if held % 1 else str(int(held))
    raise IdxFormatError(
        f'{name}: header says {count} {kind} but file holds {held_text}')


def parse_images(name: str, data: bytes,
                 shape: Tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
  """Returns the images of an IDX3 file as a uint8 array [N, rows * cols]."""
  header = parse_header(name, data, IMAGES_MAGIC)
  if len(header.dims) != 3:
    raise IdxFormatError(
        f'{name}: header has {len(header.dims)} dimensions, expected 3 '
        '(count, rows, columns)')
  if tuple(header.dims[1:]) != tuple(shape):
    raise IdxFormatError(
        f'{name}: images are {header.dims[1]}x{header.dims[2]}, expected '
        f'{shape[0]}x{shape[1]}')
  _check_length(name, data, header, 'images')
  return np.frombuffer(
      data, dtype=np.uint8, offset=header.data_offset).reshape(
          header.dims[0], shape[0] * shape[1])


def parse_labels(name: str, data: bytes) -> np.ndarray:
  """Returns the labels of an IDX1 file as a uint8 array [N], checked to be 0-9."""
  header = parse_header(name, data, LABELS_MAGIC)
  if len(header.dims) != 1:
    raise IdxFormatError(
        f'{name}: header has {len(header.dims)} dimensions, expected 1 (count)')
  _check_length(name, data, header, 'labels')
  labels = np.frombuffer(data, dtype=np.uint8, offset=header.data_offset)
  bad = np.flatnonzero(labels >= features.NUM_CLASSES)
  if bad.size:
    raise IdxFormatError(
        f'{name}: label {labels[bad[0]]} at index {bad[0]} is outside '
        f'0-{features.NUM_CLASSES - 1} ({bad.size} such labels)')
  return labels


def load_pair(images_path: str, labels_path: str,
              shape: Tuple[int, int] = IMAGE_SHAPE) -> Tuple[np.ndarray, np.ndarray]:
  """Reads, validates and returns (images [N, 784] uint8, labels [N] uint8)."""
  images_name = os.path.basename(images_path)
  labels_name = os.path.basename(labels_path)
  images = parse_images(images_name, read_bytes(images_path), shape)
  labels = parse_labels(labels_name, read_bytes(labels_path))
  if len(images) != len(labels):
    raise IdxFormatError(
        f'{images_name} holds {len(images)} images but {labels_name} holds '
        f'{len(labels)} labels')
  return images, labels


def locate(directory: str, part: str) -> Tuple[str, str]:
  """Returns the (images, labels) paths of `part` ('train' or 'test')."""
  images_name, labels_name = FILE_NAMES[part]
  return find_file(directory, images_name), find_file(directory, labels_name)


def load(directory: str, part: str,
         shape: Tuple[int, int] = IMAGE_SHAPE) -> Tuple[np.ndarray, np.ndarray]:
  """Loads and validates one part of an MNIST directory."""
  return load_pair(*locate(directory, part), shape=shape)


def load_labels(directory: str, part: str) -> np.ndarray:
  """The validated labels of one part alone, for callers that need no images
  (60k training images are 47 MB to read and check)."""
  _, labels_name = FILE_NAMES[part]
  path = find_file(directory, labels_name)
  return parse_labels(os.path.basename(path), read_bytes(path))


def validation_indices(count: int, valid_count: int, seed: int) -> np.ndarray:
  """Indices of the held-out `valid` examples carved from a train part.

  A seeded permutation, not the last rows, so the split is class-balanced in
  expectation; sorted so that reading stays sequential. Deterministic: the same
  (count, valid_count, seed) always gives the same split.
  """
  if not 0 <= valid_count < count:
    raise ValueError(
        f'valid_count must be in [0, {count}), got {valid_count}')
  rng = np.random.default_rng(seed)
  return np.sort(rng.permutation(count)[:valid_count])


def split_indices(count: int, valid_count: int,
                  seed: int) -> Dict[str, np.ndarray]:
  """Returns {'train': indices, 'valid': indices} partitioning range(count)."""
  valid = validation_indices(count, valid_count, seed)
  mask = np.ones(count, dtype=bool)
  mask[valid] = False
  return {'train': np.flatnonzero(mask), 'valid': valid}


def split_names(valid_examples: int) -> List[str]:
  """The splits written: `valid` only when examples are held out for it."""
  return ['train', 'valid', 'eval'] if valid_examples > 0 else ['train', 'eval']


def selection_split(valid_examples: int) -> str:
  """The split the Trainer keeps its best epoch by: `valid`, or `eval` (the test
  images) when nothing is held out."""
  return 'valid' if 'valid' in split_names(valid_examples) else 'eval'


def example_indices(train_count: int, test_count: int, valid_examples: int,
                    seed: int) -> Dict[str, Tuple[str, np.ndarray]]:
  """split -> (the part it is drawn from, the indices of its examples there), for
  every split of `split_names`."""
  indices = {**split_indices(train_count, valid_examples, seed),
             'eval': np.arange(test_count)}
  return {split: (SPLIT_PARTS[split], indices[split])
          for split in split_names(valid_examples)}


def encode(array: np.ndarray) -> bytes:
  """Encodes a uint8 array as an IDX file: [N, rows, cols] images or [N] labels."""
  array = np.ascontiguousarray(array, dtype=np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in array.shape)
  return header + array.tobytes()


def write(path: str, array: np.ndarray) -> None:
  """Writes `array` as an IDX file, gzipped when `path` ends in `.gz`."""
  data = encode(array)
  if path.endswith('.gz'):
    data = gzip.compress(data, mtime=0)
  with open(path, 'wb') as f:
    f.write(data)
