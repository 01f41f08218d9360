"""IDX parsing and validation: every defect fails with the file and the defect named."""

import gzip
import os

import numpy as np
import pytest

from components import idx
from tests.testutil.mnist_files import images_of


def _write_pair(directory, images, labels, gzipped=False, part='train'):
  suffix = '.gz' if gzipped else ''
  images_name, labels_name = idx.FILE_NAMES[part]
  idx.write(os.path.join(directory, images_name + suffix), images)
  idx.write(os.path.join(directory, labels_name + suffix), labels)


def test_round_trip_raw_and_gzipped(tmp_path):
  images, labels = images_of(5), np.array([0, 1, 2, 9, 4], dtype=np.uint8)
  for gzipped, sub in ((False, 'raw'), (True, 'gz')):
    directory = tmp_path / sub
    directory.mkdir()
    _write_pair(str(directory), images, labels, gzipped)
    got_images, got_labels = idx.load(str(directory), 'train')
    np.testing.assert_array_equal(got_images, images.reshape(5, 784))
    np.testing.assert_array_equal(got_labels, labels)


def test_real_mnist_headers_and_counts(mnist_dir):
  images, labels = idx.load(mnist_dir, 'train')
  assert images.shape == (60000, 784)
  assert np.bincount(labels).tolist() == [
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  images, labels = idx.load(mnist_dir, 'test')
  assert images.shape == (10000, 784)
  assert np.bincount(labels).tolist() == [
      980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _error(fn, *args):
  with pytest.raises(idx.IdxFormatError) as info:
    fn(*args)
  return str(info.value)


def test_truncated_image_file():
  data = idx.encode(images_of(4))[:-392]
  assert _error(idx.parse_images, 'train-images-idx3-ubyte', data) == (
      'train-images-idx3-ubyte: header says 4 images but file holds 3.5')


def test_extra_bytes_in_label_file():
  data = idx.encode(np.zeros(3, np.uint8)) + b'\x00'
  assert _error(idx.parse_labels, 'l', data) == (
      'l: header says 3 labels but file holds 4')


def test_wrong_magic_numbers():
  labels = idx.encode(np.zeros(3, np.uint8))
  assert 'magic number is 2049, expected 2051' in _error(
      idx.parse_images, 'i', labels)
  images = idx.encode(images_of(2))
  assert 'magic number is 2051, expected 2049' in _error(
      idx.parse_labels, 'l', images)


def test_wrong_image_size():
  message = _error(idx.parse_images, 'i', idx.encode(images_of(2, 32, 32)))
  assert message == 'i: images are 32x32, expected 28x28'
  # Configurable: the same file is fine when 32x32 is what was asked for.
  assert idx.parse_images('i', idx.encode(images_of(2, 32, 32)),
                          (32, 32)).shape == (2, 1024)


def test_file_shorter_than_header():
  assert 'too short for an IDX header' in _error(
      idx.parse_images, 'i', b'\x00\x00')
  assert 'too short for its 16-byte header' in _error(
      idx.parse_images, 'i', idx.encode(images_of(1))[:10])


def test_label_out_of_range():
  labels = np.array([1, 2, 11, 3, 12], dtype=np.uint8)
  assert _error(idx.parse_labels, 'train-labels-idx1-ubyte',
                idx.encode(labels)) == (
                    'train-labels-idx1-ubyte: label 11 at index 2 is outside '
                    '0-9 (2 such labels)')


def test_count_mismatch_between_images_and_labels(tmp_path):
  _write_pair(str(tmp_path), images_of(5), np.zeros(4, np.uint8))
  assert _error(idx.load, str(tmp_path), 'train') == (
      'train-images-idx3-ubyte holds 5 images but train-labels-idx1-ubyte '
      'holds 4 labels')


def test_missing_file(tmp_path):
  idx.write(str(tmp_path / 'train-images-idx3-ubyte'), images_of(1))
  assert 'train-labels-idx1-ubyte: not found in' in _error(
      idx.load, str(tmp_path), 'train')


def test_corrupt_gzip(tmp_path):
  path = tmp_path / 'train-images-idx3-ubyte.gz'
  path.write_bytes(gzip.compress(idx.encode(images_of(3)))[:-20])
  assert 'train-images-idx3-ubyte.gz: not a readable gzip file' in _error(
      idx.read_bytes, str(path))


def test_valid_split_is_deterministic_disjoint_and_balanced():
  splits = idx.split_indices(60000, 5000, seed=7)
  again = idx.split_indices(60000, 5000, seed=7)
  np.testing.assert_array_equal(splits['valid'], again['valid'])
  assert len(splits['valid']) == 5000 and len(splits['train']) == 55000
  assert not set(splits['valid']) & set(splits['train'])
  # A seeded sample, not the tail: spread over the whole file.
  assert splits['valid'].min() < 1000 and splits['valid'].max() > 59000
  assert not np.array_equal(
      splits['valid'], idx.split_indices(60000, 5000, seed=8)['valid'])
