"""The storage contract (serving/core/storage_path.py): numbered version folders."""

import os

from serving.core import storage_path


def test_versions_are_numbered_folders(tmp_path):
  for name in ('1', '0002', 'tmp', '.pushing-3'):
    os.makedirs(tmp_path / name)
  (tmp_path / '4').write_text('a file, not a folder')
  assert storage_path.version_dirs(str(tmp_path)) == {
      1: f'{tmp_path}/1', 2: f'{tmp_path}/0002'}
  assert storage_path.version_dirs(str(tmp_path / 'missing')) == {}
  assert storage_path.version_dirs(str(tmp_path / '4')) == {}

