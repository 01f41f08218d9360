"""A Spark standalone cluster on this machine, with Beam's job server.

A master and N workers (one core each), every one a JVM started by Spark's own
sbin/spark-daemon.sh from the distribution tools/engines.sh took from the pyspark
package; a Beam worker pool beside each worker; and Beam's SparkJobServerDriver,
whose Spark driver submits each Beam step to the master as an application. The
master's JSON (`/json/`) lists the workers and the applications that ran.
"""

import glob
import os
import shutil
from typing import Callable, Dict, List

from pipeline.clusters import local

ENGINE = 'spark'
MASTER_CLASS = 'org.apache.spark.deploy.master.Master'
WORKER_CLASS = 'org.apache.spark.deploy.worker.Worker'
JOB_SERVER_CLASS = 'org.apache.beam.runners.spark.SparkJobServerDriver'
DEFAULT_PORTS = local.Ports(ui=8080, master=7077)
# Each worker offers, and each executor takes, this much heap. Beam's portable
# Spark runner keeps all of a partition's output from the SDK workers in the
# executor's heap before Spark sees it (SparkExecutableStageFunction collects it
# in a queue), so an executor holds a whole partition's output at once. On ten
# times MNIST, Transform died of OutOfMemoryError (exit code 52) with Spark's
# default 1 GB and with 4 GB (3 GB of byte arrays in one executor); with 8 GB it
# finished. The JVM takes heap from the machine only as it uses it.
EXECUTOR_MEMORY = '8g'

# The job server runs Spark's driver, which on Java 17 needs the module access
# Spark's own launcher grants its JVMs (spark-submit adds these; we start the
# driver's JVM ourselves).
DRIVER_JAVA_OPTIONS = [
    f'--add-opens=java.base/{package}=ALL-UNNAMED'
    for package in ('java.lang', 'java.lang.invoke', 'java.lang.reflect',
                    'java.io', 'java.net', 'java.nio', 'java.util',
                    'java.util.concurrent', 'java.util.concurrent.atomic',
                    'sun.nio.ch', 'sun.nio.cs', 'sun.security.action',
                    'sun.util.calendar')]


def spark_home() -> str:
  return local.engine_home('spark-*', ENGINE)


def job_server_home() -> str:
  return local.engine_home('beam-*-spark-*-job-server', ENGINE)


def master_url(state: local.State) -> str:
  return f'spark://127.0.0.1:{state.ports.master}'


def up(directory: str, ports: local.Ports = DEFAULT_PORTS, workers: int = 2,
       say: Callable[[str], None] = print) -> local.State:
  """Starts the cluster; returns its state (also saved in `directory`)."""
  local.java_home()  # first: one line where there is no Java
  home, job_server = spark_home(), job_server_home()
  local.check_ports_free([ports.job, ports.artifact, ports.ui, ports.master],
                         ENGINE)
  state = local.State(ENGINE, os.path.abspath(directory), ports, workers)
  shutil.rmtree(state.directory, ignore_errors=True)
  os.makedirs(os.path.join(state.directory, 'work'))
  state.save()
  env = local.java_environment(
      SPARK_HOME=home, SPARK_LOG_DIR=os.path.join(state.directory, 'log'),
      SPARK_PID_DIR=state.directory, SPARK_LOCAL_IP='127.0.0.1',
      SPARK_WORKER_DIR=os.path.join(state.directory, 'work'),
      SPARK_CONF_DIR=os.path.join(state.directory, 'conf'),
      SPARK_IDENT_STRING='mnist-tfx')
  os.makedirs(env['SPARK_CONF_DIR'])
  daemon = os.path.join(home, 'sbin', 'spark-daemon.sh')

  say(f'spark: master and {workers} workers (Spark in {home})')
  local.run_script([daemon, 'start', MASTER_CLASS, '1', '--host', '127.0.0.1',
        '--port', str(ports.master), '--webui-port', str(ports.ui)], env, state)
  local.wait_until(lambda: _master(state) is not None,
                   f'the Spark master at {state.ui_url}', 60,
                   os.path.join(state.directory, 'log'))
  for index in range(1, workers + 1):
    # The worker and the executors it starts inherit JAVA_TOOL_OPTIONS: they
    # resolve beam-worker-pool to this worker's own pool (local.py).
    hosts = local.hosts_file(state.directory, index)
    local.run_script([daemon, 'start', WORKER_CLASS, str(index), '--cores', '1',
          '--memory', EXECUTOR_MEMORY, '--webui-port', '0', master_url(state)],
         dict(env, JAVA_TOOL_OPTIONS=f'-Djdk.net.hosts.file={hosts}'), state)
    state.pids[f'worker-pool-{index}'] = local.start_worker_pool(
        state.directory, index, ports.pool)
  state.save()
  local.wait_until(lambda: len(alive_workers(state)) >= workers,
                   f'Spark with {workers} workers at {state.ui_url}', 60,
                   os.path.join(state.directory, 'log'))

  # Beam's Spark runner for the executors, from the cluster's own directory
  # (local.runner_class_path): the driver, in the job server, ships no jars.
  runner_lib = os.path.join(state.directory, 'runner-lib')
  local.runner_class_path(
      runner_lib, job_server, glob.glob(os.path.join(home, 'jars', '*.jar')),
      exclude=('spark-', 'scala-', 'slf4j-', 'log4j-', 'logback-'))
  local.start_job_server(
      state, DRIVER_JAVA_OPTIONS + [
          f'-Dspark.executor.extraClassPath={os.path.join(runner_lib, "*")}',
          f'-Dspark.executor.memory={EXECUTOR_MEMORY}'],
      job_server, JOB_SERVER_CLASS, f'--spark-master-url={master_url(state)}', env)
  say(f'spark: up; master {master_url(state)}, web UI {state.ui_url}, '
      f'Beam job server {state.job_endpoint}')
  return state


def down(directory: str, say: Callable[[str], None] = print) -> bool:
  """Stops what `up` started in `directory`; False if nothing was running."""
  state = local.State.load(directory)
  if state is None:
    return False
  local.stop(state, worker_pids(state) + local.read_pid_files(
      state.directory, 'spark-', '.Master-'))
  say(f'spark: stopped the cluster in {state.directory}')
  return True


def worker_pids(state: local.State) -> List[int]:
  """The workers' pids, from the pid files spark-daemon.sh keeps."""
  return local.read_pid_files(state.directory, 'spark-', '.Worker-')


def alive_workers(state: local.State) -> List[Dict[str, object]]:
  return [w for w in (_master(state) or {}).get('workers', [])
          if w.get('state') == 'ALIVE']


def applications(state: local.State) -> List[Dict[str, object]]:
  """The master's own list of the applications it ran and runs (`/json/`)."""
  master = _master(state) or {}
  return list(master.get('completedapps', [])) + list(
      master.get('activeapps', []))


def _master(state: local.State):
  return local.get_json(f'{state.ui_url}/json/')
