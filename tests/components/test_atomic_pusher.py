"""Version numbering, duplicate detection and atomicity of the push."""

import os

import pytest

from components import atomic_pusher


def _model(path, fingerprint: bytes):
  os.makedirs(os.path.join(path, 'variables'))
  for name, content in (('saved_model.pb', b'graph'),
                        ('fingerprint.pb', fingerprint),
                        ('variables/variables.index', b'index')):
    with open(os.path.join(path, name), 'wb') as f:
      f.write(content)
  return path


def test_versions_grow_from_the_largest_existing_one(tmp_path):
  base = str(tmp_path / 'serving' / 'mnist')
  os.makedirs(os.path.join(base, '7'))
  os.makedirs(os.path.join(base, 'not-a-version'))
  result = atomic_pusher.push(_model(str(tmp_path / 'a'), b'A'), base)
  assert result == {'version': 8, 'path': os.path.join(base, '8'), 'pushed': True}
  assert atomic_pusher.versions(base) == [7, 8]
  with open(os.path.join(base, '8', 'variables', 'variables.index'), 'rb') as f:
    assert f.read() == b'index'


def test_same_model_is_not_pushed_twice(tmp_path):
  base = str(tmp_path / 'mnist')
  assert atomic_pusher.push(_model(str(tmp_path / 'a'), b'A'), base)['version'] == 1
  again = atomic_pusher.push(_model(str(tmp_path / 'a2'), b'A'), base)
  assert again == {'version': 1, 'path': os.path.join(base, '1'), 'pushed': False}
  other = atomic_pusher.push(_model(str(tmp_path / 'b'), b'B'), base)
  assert other['version'] == 2 and other['pushed']


def test_failed_push_leaves_nothing_half_written(tmp_path, monkeypatch):
  base = str(tmp_path / 'mnist')
  atomic_pusher.push(_model(str(tmp_path / 'a'), b'A'), base)

  def broken_rename(src, dst):
    raise OSError('disk full (simulated)')

  # A fault that cannot be produced for real in a test: the final rename fails.
  monkeypatch.setattr(atomic_pusher.os, 'rename', broken_rename)
  with pytest.raises(OSError, match='simulated'):
    atomic_pusher.push(_model(str(tmp_path / 'b'), b'B'), base)
  assert sorted(os.listdir(base)) == ['1']  # version 1 serves on, no debris
