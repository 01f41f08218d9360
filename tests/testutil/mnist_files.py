"""MNIST IDX files for tests: slices of the real files, and random digits."""

import os

import numpy as np

from components import idx


def write_slice(source_dir: str, target_dir: str, train: int, test: int,
                gzipped: bool = False, downscale: int = 1) -> str:
  """Writes the first `train`/`test` real MNIST examples as IDX files, every
  `downscale`th row and column of each image (2: 14x14 digits)."""
  os.makedirs(target_dir, exist_ok=True)
  suffix = '.gz' if gzipped else ''
  for part, count in (('train', train), ('test', test)):
    images, labels = idx.load(source_dir, part)
    images_name, labels_name = idx.FILE_NAMES[part]
    idx.write(os.path.join(target_dir, images_name + suffix),
              images[:count].reshape(-1, *idx.IMAGE_SHAPE)[:, ::downscale,
                                                            ::downscale])
    idx.write(os.path.join(target_dir, labels_name + suffix), labels[:count])
  return target_dir


def images_of(count: int, rows: int = 28, cols: int = 28, seed: int = 0):
  return np.random.default_rng(seed).integers(
      0, 256, size=(count, rows, cols), dtype=np.uint8)
