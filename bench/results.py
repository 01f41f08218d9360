"""Benchmark results that record themselves: one CSV row per run.

Each benchmark in bench/ prints its figures and then appends them, with where and
when they were measured, to bench/results/<benchmark>.csv:

    date       UTC, ISO 8601 (seconds)
    commit     `git rev-parse --short HEAD` of this checkout, or 'unknown'
    cpu        the CPU's model name from /proc/cpuinfo
    cpu_flags  which of avx2, avx512f, avx512_bf16, amx_tile the CPU has, joined
               by '+' (what decides the training precision and oneDNN's kernels)
    settings   the run's settings, compact: 'k=v;k=v'
    ...        the benchmark's own figures, in the order it gives them

The first row of a new file writes the header; a row whose columns differ from an
existing header is refused (ValueError): change a benchmark's figures and its file
starts anew under a new name, or gets its header migrated on purpose, never mixed.

Only the standard library, so that shell scripts can call it with the host's
python3 (outside the environment), as bench/first_prediction.sh does:

    python3 bench/results.py first_prediction --settings 'profile=full' \\
        run_s=1229 serve_s=17 total_s=1246
"""

import argparse
import csv
import datetime
import os
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Union

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, 'results')
CONTEXT_COLUMNS = ('date', 'commit', 'cpu', 'cpu_flags', 'settings')
# The instruction sets that change how fast (and in which precision) this project
# trains and serves: AVX2 (oneDNN's float32 kernels), AVX-512, AVX-512 BF16 and AMX
# (bfloat16 in hardware: models/trainer/distribution.py).
RELEVANT_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile')

Settings = Union[str, Mapping[str, object]]


def commit(repo: str = REPO) -> str:
  """The short hash of the checkout's HEAD, or 'unknown'.

  Read from .git itself when there is no git command: the benchmarks run inside
  the project's environment, which has none.
  """
  try:
    found = subprocess.run(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'],
                           capture_output=True, text=True, timeout=10, check=False)
    if found.returncode == 0 and found.stdout.strip():
      return found.stdout.strip()
  except (OSError, subprocess.SubprocessError):
    pass
  return _commit_from_git_dir(os.path.join(repo, '.git')) or 'unknown'


def _commit_from_git_dir(git_dir: str) -> Optional[str]:
  """HEAD's commit, following a symbolic ref into refs/ or packed-refs."""
  try:
    with open(os.path.join(git_dir, 'HEAD')) as f:
      head = f.read().strip()
    if not head.startswith('ref: '):
      return head[:7] or None
    ref = head[5:]
    ref_path = os.path.join(git_dir, ref)
    if os.path.exists(ref_path):
      with open(ref_path) as f:
        return f.read().strip()[:7] or None
    with open(os.path.join(git_dir, 'packed-refs')) as f:
      for line in f:
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref:
          return parts[0][:7]
  except OSError:
    pass
  return None


def _cpuinfo(path: str = '/proc/cpuinfo') -> Dict[str, str]:
  """The first processor's fields of /proc/cpuinfo (empty if unreadable)."""
  fields: Dict[str, str] = {}
  try:
    with open(path, encoding='utf-8', errors='replace') as f:
      for line in f:
        if not line.strip():
          if fields:
            break
          continue
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  return fields


def cpu_model(path: str = '/proc/cpuinfo') -> str:
  return _cpuinfo(path).get('model name', 'unknown') or 'unknown'


def cpu_flags(path: str = '/proc/cpuinfo') -> str:
  """'avx2+avx512f+...': the RELEVANT_FLAGS the CPU lists, in that order; '' for
  none of them, 'unknown' when /proc/cpuinfo says nothing."""
  info = _cpuinfo(path)
  if 'flags' not in info:
    return 'unknown'
  present = set(info['flags'].split())
  return '+'.join(flag for flag in RELEVANT_FLAGS if flag in present)


def format_settings(settings: Optional[Settings]) -> str:
  """'k=v;k=v' from a mapping (in its order), or the string as given."""
  if settings is None:
    return ''
  if isinstance(settings, str):
    return settings
  for key, value in settings.items():
    if any(c in f'{key}{value}' for c in ';\n') or '=' in str(key):
      raise ValueError(f'setting {key}={value!r}: keys and values may not '
                       "contain ';' or newlines, keys not '='")
  return ';'.join(f'{key}={value}' for key, value in settings.items())


def _format_figure(value: object) -> str:
  if value is None:
    return ''
  if isinstance(value, float):
    return f'{value:.6g}'
  return str(value)


def path_of(benchmark: str, results_dir: str = RESULTS_DIR) -> str:
  if not benchmark or os.sep in benchmark or benchmark.startswith('.'):
    raise ValueError(f'benchmark name {benchmark!r}: a plain file name is expected')
  return os.path.join(results_dir, f'{benchmark}.csv')


def record(benchmark: str, figures: Mapping[str, object],
           settings: Optional[Settings] = None, *,
           results_dir: str = RESULTS_DIR, date: Optional[str] = None,
           commit_id: Optional[str] = None, cpu: Optional[str] = None,
           flags: Optional[str] = None) -> str:
  """Appends one row to <results_dir>/<benchmark>.csv and returns the file's path.

  `figures` maps the benchmark's figure columns to values (None: left empty), in
  the order they should appear. date, commit, cpu and cpu_flags are read from this
  machine and checkout unless given (as when older measurements are entered).
  Raises ValueError when the file exists with other columns.
  """
  columns: List[str] = list(CONTEXT_COLUMNS) + list(figures)
  clash = set(CONTEXT_COLUMNS) & set(figures)
  if clash:
    raise ValueError(f'figure names {sorted(clash)} are context columns')
  row = [
      date or datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%dT%H:%M:%SZ'),
      commit_id or commit(),
      cpu or cpu_model(),
      flags if flags is not None else cpu_flags(),
      format_settings(settings),
  ] + [_format_figure(value) for value in figures.values()]

  path = path_of(benchmark, results_dir)
  os.makedirs(results_dir, exist_ok=True)
  new = not os.path.exists(path) or os.path.getsize(path) == 0
  if not new:
    with open(path, newline='', encoding='utf-8') as f:
      header = next(csv.reader(f), [])
    if header != columns:
      raise ValueError(
          f'{path} has the columns {header}; this row has {columns}: write it to '
          'a file of its own or migrate the file first')
  with open(path, 'a', newline='', encoding='utf-8') as f:
    writer = csv.writer(f, lineterminator='\n')
    if new:
      writer.writerow(columns)
    writer.writerow(row)
  return path


def record_and_say(benchmark: str, figures: Mapping[str, object],
                   settings: Optional[Settings] = None) -> Optional[str]:
  """`record`, then one line saying where the row went. A refused row is reported
  on stderr instead of raised: the figures were printed already, and a benchmark
  that ran for an hour should not end in a traceback."""
  try:
    path = record(benchmark, figures, settings)
  except (OSError, ValueError) as error:
    print(f'result not recorded: {error}', file=sys.stderr)
    return None
  print(f'result recorded in {os.path.relpath(path, REPO)}')
  return path


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      description='Append one result row to bench/results/<benchmark>.csv.')
  parser.add_argument('benchmark', help='file name without .csv')
  parser.add_argument('figures', nargs='*', metavar='NAME=VALUE',
                      help='the figure columns, in order')
  parser.add_argument('--settings', default='', help="'k=v;k=v'")
  args = parser.parse_args(argv)
  figures: Dict[str, str] = {}
  for item in args.figures:
    name, sep, value = item.partition('=')
    if not sep or not name:
      parser.error(f'{item!r}: expected NAME=VALUE')
    figures[name] = value
  return 0 if record_and_say(args.benchmark, figures, args.settings) else 1


if __name__ == '__main__':
  sys.exit(main())
