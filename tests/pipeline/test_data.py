"""Fetching MNIST: checksums are enforced, nothing half-written is left behind and
the user's files are never replaced."""

import gzip
import io
import os
import tarfile

import pytest

from pipeline import data
from tests.testutil.cli import snapshot


def _tarball(files):
  buffer = io.BytesIO()
  # The fastest gzip level: the test is about the checksums, not the size.
  with tarfile.open(fileobj=buffer, mode='w:gz', compresslevel=1) as tar:
    for name, content in files.items():
      info = tarfile.TarInfo(f'package/data/{name}')
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return buffer.getvalue()


def test_fetched_files_match_published_checksums(mnist_dir):
  for name, digest in data.SHA256.items():
    assert data.sha256_of(os.path.join(mnist_dir, name)) == digest


def test_tampered_download_is_refused(mnist_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('MNIST_TFX_NPM_REGISTRY', 'http://registry.invalid')
  files = {}
  for name in data.SHA256:
    with open(os.path.join(mnist_dir, name), 'rb') as f:
      files[name] = f.read()
  files['t10k-labels-idx1-ubyte'] = files['t10k-labels-idx1-ubyte'][:-1] + b'\x07'
  # A corrupted download cannot be produced for real: hand one to fetch().
  with pytest.raises(data.DataError,
                     match='t10k-labels-idx1-ubyte: SHA-256 is .* expected'):
    data.fetch(str(tmp_path), download=lambda url: _tarball(files),
               log=lambda line: None)
  assert not os.path.exists(tmp_path / 't10k-labels-idx1-ubyte')
  assert not [p for p in os.listdir(tmp_path) if p.startswith('tmp')]


def test_have_data_accepts_gzipped_files(small_mnist_dir, tmp_path):
  assert data.have_data(small_mnist_dir)  # the fixture writes .gz files
  assert not data.have_data(str(tmp_path))


def test_fetch_keeps_original_files_in_either_form(mnist_dir, tmp_path):
  """Originals already there, raw or gzipped, are neither refused nor fetched."""
  for name in data.SHA256:
    with open(os.path.join(mnist_dir, name), 'rb') as source:
      content = source.read()
    if name.startswith('t10k'):
      with gzip.open(tmp_path / (name + '.gz'), 'wb') as f:
        f.write(content)
    else:
      (tmp_path / name).write_bytes(content)
  before = snapshot(tmp_path)

  def no_download(url):
    raise AssertionError(f'downloaded {url}')

  data.fetch(str(tmp_path), download=no_download, log=lambda line: None)
  assert snapshot(tmp_path) == before

