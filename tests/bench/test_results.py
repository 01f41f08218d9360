"""bench/results.py: each benchmark run appends one row, with where and when it
was measured, and a row that does not fit the file is refused."""

import csv
import os
import sys

import pytest

from pipeline import config as config_lib

sys.path.insert(0, os.path.join(config_lib.REPO_ROOT, 'bench'))
import results  # pylint: disable=g-import-not-at-top,wrong-import-position


def _rows(path):
  with open(path, newline='') as f:
    return list(csv.reader(f))


def test_rows_carry_the_machine_the_checkout_and_the_settings(tmp_path):
  path = results.record('speed', {'images_per_s': 812.5, 'ratio': None},
                        {'profile': 'full', 'rounds': 7},
                        results_dir=str(tmp_path))
  results.record('speed', {'images_per_s': 790, 'ratio': 0.3}, 'profile=full',
                 results_dir=str(tmp_path))
  header, first, second = _rows(path)
  assert header == ['date', 'commit', 'cpu', 'cpu_flags', 'settings',
                    'images_per_s', 'ratio']
  assert first[4:] == ['profile=full;rounds=7', '812.5', '']
  assert second[4:] == ['profile=full', '790', '0.3']
  assert first[1] == results.commit() != ''
  assert first[2] == results.cpu_model()
  # Only the instruction sets that decide precision and kernels, in order.
  assert set(first[3].split('+')) <= set(results.RELEVANT_FLAGS) | {''}


def test_a_row_with_other_columns_is_refused_and_the_file_kept(tmp_path):
  path = results.record('speed', {'images_per_s': 1}, results_dir=str(tmp_path))
  before = _rows(path)
  with pytest.raises(ValueError, match='has the columns'):
    results.record('speed', {'images_per_second': 1}, results_dir=str(tmp_path))
  assert _rows(path) == before


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nmodel name\t: Some CPU\n'
                     'flags\t\t: fpu avx2 amx_tile avx512_bf16 sse\n\n'
                     'processor\t: 1\nmodel name\t: Other\n')
  assert results.cpu_model(str(cpuinfo)) == 'Some CPU'
  assert results.cpu_flags(str(cpuinfo)) == 'avx2+avx512_bf16+amx_tile'


def test_the_shipped_result_files_are_well_formed():
  for name in os.listdir(results.RESULTS_DIR):
    rows = _rows(os.path.join(results.RESULTS_DIR, name))
    assert rows[0][:5] == list(results.CONTEXT_COLUMNS), name
    assert {len(row) for row in rows[1:]} == {len(rows[0])}, name


def test_the_commit_is_read_from_git_dir_without_a_git_command(tmp_path):
  git_dir = tmp_path / '.git'
  (git_dir / 'refs' / 'heads').mkdir(parents=True)
  (git_dir / 'HEAD').write_text('ref: refs/heads/main\n')
  (git_dir / 'packed-refs').write_text(
      '# pack-refs with: peeled\n' + 'a' * 40 + ' refs/heads/main\n')
  assert results._commit_from_git_dir(str(git_dir)) == 'aaaaaaa'  # pylint: disable=protected-access
  (git_dir / 'refs' / 'heads' / 'main').write_text('b' * 40 + '\n')
  assert results._commit_from_git_dir(str(git_dir)) == 'bbbbbbb'  # pylint: disable=protected-access
  (git_dir / 'HEAD').write_text('c' * 40 + '\n')  # a detached HEAD
  assert results._commit_from_git_dir(str(git_dir)) == 'ccccccc'  # pylint: disable=protected-access
