"""A Flink standalone session cluster on this machine, with Beam's job server.

One JobManager and N TaskManagers (one task slot each), every one a JVM started by
Flink's own bin/jobmanager.sh and bin/taskmanager.sh from the distribution
tools/engines.sh assembled; a Beam worker pool beside each TaskManager; and
Beam's FlinkJobServerDriver, which submits the Beam steps to the JobManager's REST
address. Flink's REST API (`/overview`, `/jobs/overview`) is what shows that the
steps ran here.
"""

import glob
import os
import shutil
from typing import Callable, Dict, List

import yaml

from pipeline.clusters import local

ENGINE = 'flink'
JOB_SERVER_CLASS = 'org.apache.beam.runners.flink.FlinkJobServerDriver'


def flink_home() -> str:
  return local.engine_home('flink-*', ENGINE)


def job_server_home() -> str:
  return local.engine_home('beam-*-flink-*-job-server', ENGINE)


def configuration(state: local.State, home: str) -> Dict[str, object]:
  """config.yaml of every process: loopback only, one slot per TaskManager,
  memory that fits two TaskManagers and the SDK workers in a few GB, and Flink's
  restart strategy so a lost TaskManager's tasks are retried."""
  with open(os.path.join(home, 'conf', 'config.yaml')) as f:
    shipped = yaml.safe_load(f)
  java_options = shipped['env']['java']['opts']['all']  # Java 17's --add-opens
  return {
      'env.java.opts.all': java_options,
      'env.pid.dir': state.directory,
      'env.log.dir': os.path.join(state.directory, 'log'),
      'jobmanager.rpc.address': 'localhost',
      'jobmanager.rpc.port': state.ports.master,
      'jobmanager.bind-host': 'localhost',
      'jobmanager.memory.process.size': '1024m',
      'jobmanager.execution.failover-strategy': 'region',
      'taskmanager.bind-host': 'localhost',
      'taskmanager.host': 'localhost',
      'taskmanager.numberOfTaskSlots': 1,
      'taskmanager.memory.process.size': '6144m',
      'taskmanager.memory.network.min': '1024m',
      'taskmanager.memory.network.max': '1024m',
      # Beam's data plane to the SDK workers is gRPC on Netty, whose buffers
      # are direct memory outside the network buffers: with none set aside, a
      # step on all of MNIST failed with "Cannot reserve ... bytes of direct
      # buffer memory". Managed memory (only Flink's batch sorts use it) is
      # capped so the heap keeps about 3 GB: Transform on ten times MNIST
      # peaked at 2.4 GB of old generation in one TaskManager, and with 1.1 GB
      # it died of "OutOfMemoryError: Java heap space" in Beam's data plane.
      'taskmanager.memory.task.off-heap.size': '512m',
      'taskmanager.memory.managed.size': '512m',
      'rest.address': 'localhost',
      'rest.bind-address': 'localhost',
      'rest.port': state.ports.ui,
      'parallelism.default': state.workers,
      'restart-strategy.type': 'fixed-delay',
      'restart-strategy.fixed-delay.attempts': 2,
      # Without enough slots (a TaskManager lost for good) a job fails in
      # seconds instead of waiting the default five minutes for one.
      'slot.request.timeout': 15000,
      'restart-strategy.fixed-delay.delay': '2 s',
      # A lost TaskManager is noticed in seconds, not the default 50.
      'heartbeat.timeout': 10000,
      'heartbeat.interval': 2000,
  }


def up(directory: str, ports: local.Ports = local.Ports(), workers: int = 2,
       say: Callable[[str], None] = print) -> local.State:
  """Starts the cluster; returns its state (also saved in `directory`)."""
  local.java_home()  # first: one line where there is no Java
  home, job_server = flink_home(), job_server_home()
  local.check_ports_free([ports.job, ports.artifact, ports.ui, ports.master],
                         ENGINE)
  state = local.State(ENGINE, os.path.abspath(directory), ports, workers)
  conf_dir = os.path.join(state.directory, 'conf')
  shutil.rmtree(state.directory, ignore_errors=True)
  os.makedirs(os.path.join(state.directory, 'log'))
  os.makedirs(conf_dir)
  for name in ('log4j.properties', 'log4j-console.properties'):
    shutil.copy(os.path.join(home, 'conf', name), conf_dir)
  with open(os.path.join(conf_dir, 'config.yaml'), 'w') as f:
    yaml.safe_dump(configuration(state, home), f)
  _class_path(state, home, job_server)
  state.save()
  env = _environment(state)

  say(f'flink: JobManager and {workers} TaskManagers (Flink in {home})')
  local.run_script([os.path.join(home, 'bin', 'jobmanager.sh'), 'start'], env,
                   state)
  for index in range(1, workers + 1):
    start_task_manager(state, index)
    state.pids[f'worker-pool-{index}'] = local.start_worker_pool(
        state.directory, index, ports.pool)
  state.save()
  local.wait_until(lambda: _task_managers(state) >= workers,
                   f'Flink with {workers} TaskManagers at {state.ui_url}', 90,
                   os.path.join(state.directory, 'log'))

  local.start_job_server(state, [], job_server, JOB_SERVER_CLASS,
                         f'--flink-master=localhost:{ports.ui}', env)
  say(f'flink: up; REST API {state.ui_url}, Beam job server '
      f'{state.job_endpoint}')
  return state


def start_task_manager(state: local.State, index: int) -> None:
  """Starts TaskManager `index` (from 1), which resolves beam-worker-pool to its
  own pool (local.py); also how a lost one is replaced."""
  hosts = local.hosts_file(state.directory, index)
  local.run_script(
      [os.path.join(flink_home(), 'bin', 'taskmanager.sh'), 'start'],
      dict(_environment(state), JAVA_TOOL_OPTIONS=f'-Djdk.net.hosts.file={hosts}'),
      state)


def _class_path(state: local.State, home: str, job_server: str) -> None:
  """The cluster's lib/ (FLINK_LIB_DIR): Flink's own, and Beam's Flink runner
  with what it needs beyond Flink, so that no job ships them."""
  lib = os.path.join(state.directory, 'lib')
  flink_jars = sorted(glob.glob(os.path.join(home, 'lib', '*.jar')))
  os.makedirs(lib)
  for jar in flink_jars:
    os.symlink(jar, os.path.join(lib, os.path.basename(jar)))
  # flink-dist holds the rest of Flink and its logging bridge.
  local.runner_class_path(lib, job_server, flink_jars,
                          exclude=('flink-', 'slf4j-', 'log4j-'))


def _environment(state: local.State) -> Dict[str, str]:
  return local.java_environment(
      FLINK_CONF_DIR=os.path.join(state.directory, 'conf'), FLINK_HOME=flink_home(),
      FLINK_LIB_DIR=os.path.join(state.directory, 'lib'))


def down(directory: str, say: Callable[[str], None] = print) -> bool:
  """Stops what `up` started in `directory`; False if nothing was running."""
  state = local.State.load(directory)
  if state is None:
    return False
  local.stop(state, task_manager_pids(state) + local.read_pid_files(
      state.directory, 'flink-', '-standalonesession'))
  say(f'flink: stopped the cluster in {state.directory}')
  return True


def task_manager_pids(state: local.State) -> List[int]:
  """The TaskManagers' pids, from the pid file Flink's scripts keep."""
  return local.read_pid_files(state.directory, 'flink-', '-taskexecutor')


def jobs(state: local.State) -> List[Dict[str, object]]:
  """Flink's own list of the jobs it ran (REST /jobs/overview)."""
  overview = local.get_json(f'{state.ui_url}/jobs/overview') or {}
  return list(overview.get('jobs', []))


def _task_managers(state: local.State) -> int:
  overview = local.get_json(f'{state.ui_url}/overview') or {}
  return int(overview.get('taskmanagers', 0))
