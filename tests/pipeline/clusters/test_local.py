"""pipeline/clusters/local.py: what `up` records for `down`, the hosts file that
gives each worker its own pool, and the one-line errors."""

import os
import sys

import pytest

from pipeline.clusters import local


def test_state_round_trips_through_its_file(tmp_path):
  state = local.State('flink', str(tmp_path), local.Ports(job=9001, pool=50100),
                      workers=3, pids={'job-server': 12})
  state.save()
  loaded = local.State.load(str(tmp_path))
  assert loaded == state
  assert loaded.job_endpoint == 'localhost:9001'
  assert loaded.worker_pool == 'beam-worker-pool:50100'
  assert local.State.load(str(tmp_path / 'nothing')) is None


def test_each_worker_resolves_the_pool_name_to_its_own_address(tmp_path):
  for index in (1, 2):
    path = local.hosts_file(str(tmp_path), index)
    with open(path) as f:
      entries = dict(reversed(line.split(' ', 1)) for line in f.read().splitlines())
    assert entries['beam-worker-pool'] == f'127.0.0.{index + 1}'
    assert '127.0.0.1' in entries.values()  # localhost still resolves


def test_pid_files_are_read_by_kind(tmp_path):
  (tmp_path / 'flink-root-taskexecutor.pid').write_text('11\n12\n')
  (tmp_path / 'flink-root-standalonesession.pid').write_text('10\n')
  assert local.read_pid_files(str(tmp_path), 'flink-', '-taskexecutor') == [11, 12]
  assert local.read_pid_files(str(tmp_path), 'flink-', '-standalonesession') == [10]


def test_stop_pid_ends_a_process_and_its_children(tmp_path):
  pid = local.start_process(
      [sys.executable, '-c', 'import subprocess, time; '
       'subprocess.Popen(["sleep", "60"]); time.sleep(60)'],
      str(tmp_path / 'log'))
  assert local.alive(pid)
  local.stop_pid(pid)
  assert not local.alive(pid)
  assert not _session_members(pid)


def _session_members(session: int):
  """Live processes of a session, from /proc."""
  members = []
  for name in os.listdir('/proc'):
    try:
      with open(f'/proc/{name}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
      continue
    if int(fields[3]) == session and fields[0] != 'Z':
      members.append(int(name))
  return members


def test_no_java_is_one_line(monkeypatch):
  monkeypatch.delenv('JAVA_HOME', raising=False)
  with pytest.raises(local.ClusterError, match='install openjdk-17-jdk-headless'):
    local.java_home()


def test_unfetched_engine_says_how_to_fetch_it(monkeypatch, tmp_path):
  monkeypatch.setenv('MNIST_TFX_ENGINES', str(tmp_path))
  with pytest.raises(local.ClusterError,
                     match=r'run ./mnist-tfx cluster up spark'):
    local.engine_home('spark-*', 'spark')


def test_busy_port_is_named(tmp_path):
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    s.listen()
    port = s.getsockname()[1]
    with pytest.raises(local.ClusterError, match=f'port {port} is in use'):
      local.check_ports_free([port], 'flink')
    assert local.endpoint_reachable(f'localhost:{port}')
  assert not os.path.exists(tmp_path / 'x')
