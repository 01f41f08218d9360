"""What a Flink and a Spark cluster on this machine have in common.

A cluster here is the processes it would have across machines: a master, two or
more workers (task managers, Spark workers), a Beam worker pool beside each, and
Beam's job server, which turns the portable pipelines the TFX components submit
into the engine's jobs. Each is started with the engine's own scripts or
classes, from the distributions tools/engines.sh fetched, with the host's Java.
Every process's id, port and log is kept in the cluster's directory, so that
`mnist-tfx cluster down` (another process) stops exactly what `up` started.
"""

import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional, Tuple

from pipeline.errors import UserError

POOL_HOST_NAME = 'beam-worker-pool'
STATE_FILE = 'cluster.json'


class ClusterError(UserError):
  """A cluster cannot start or be reached; the message is one line that says
  what to do."""


@dataclasses.dataclass
class Ports:
  """Where a cluster listens on loopback. `cluster up` takes the defaults (the
  ones BeamConfig points at); tests take free ports."""
  job: int = 8099  # Beam's job service (BeamConfig.job_endpoint)
  artifact: int = 8098  # Beam's artifact staging service
  ui: int = 8081  # Flink's REST API / Spark master's web UI and JSON
  master: int = 6123  # Flink's JobManager RPC / Spark's master
  pool: int = 50000  # every worker pool, each on its own address


@dataclasses.dataclass
class State:
  """What `up` started, read back by `down` and the tests."""
  engine: str
  directory: str
  ports: Ports
  workers: int
  pids: Dict[str, int] = dataclasses.field(default_factory=dict)

  @property
  def job_endpoint(self) -> str:
    return f'localhost:{self.ports.job}'

  @property
  def worker_pool(self) -> str:
    return f'{POOL_HOST_NAME}:{self.ports.pool}'

  @property
  def ui_url(self) -> str:
    return f'http://localhost:{self.ports.ui}'

  def save(self) -> None:
    with open(os.path.join(self.directory, STATE_FILE), 'w') as f:
      json.dump(dataclasses.asdict(self), f, indent=2)

  @classmethod
  def load(cls, directory: str) -> Optional['State']:
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      raw = json.load(f)
    raw['ports'] = Ports(**raw['ports'])
    return cls(**raw)


# --- what tools/engines.sh fetched, and Java -------------------------------------

def engines_dir() -> str:
  path = os.environ.get('MNIST_TFX_ENGINES', '')
  if not path:
    raise ClusterError('MNIST_TFX_ENGINES is not set: start clusters through '
                       './mnist-tfx cluster up, which fetches the engines')
  return path


def engine_home(pattern: str, engine: str) -> str:
  """The fetched distribution or job server whose directory matches `pattern`."""
  found = sorted(glob.glob(os.path.join(engines_dir(), pattern, '.ready')))
  if not found:
    raise ClusterError(f'{engine} is not fetched here: run ./mnist-tfx cluster up '
                       f'{engine} (it fetches it once)')
  return os.path.dirname(found[-1])


def java_home() -> str:
  home = os.environ.get('JAVA_HOME', '')
  if not home or not os.access(os.path.join(home, 'bin', 'java'), os.X_OK):
    raise ClusterError('Flink and Spark need a Java 17 JDK on this machine: '
                       'install openjdk-17-jdk-headless')
  return home


def java_environment(**extra: str) -> Dict[str, str]:
  env = dict(os.environ, JAVA_HOME=java_home())
  env.update(extra)
  return env


def hosts_file(directory: str, index: int) -> str:
  """A hosts file for worker `index` (from 1) in which `beam-worker-pool` is its
  own pool's address; the JVMs of that worker read it instead of /etc/hosts
  (-Djdk.net.hosts.file), so one setting reaches a different pool from each."""
  path = os.path.join(directory, f'worker-{index}.hosts')
  with open(path, 'w') as f:
    f.write(f'127.0.0.1 localhost {socket.gethostname()}\n'
            f'{pool_address(index)} {POOL_HOST_NAME}\n')
  return path


def pool_address(index: int) -> str:
  return f'127.0.0.{index + 1}'


# --- processes -------------------------------------------------------------------

def start_process(command: List[str], log_path: str,
                  env: Optional[Dict[str, str]] = None) -> int:
  """Starts a daemon in a session of its own (so that stopping it reaches its
  children) with its output in log_path; returns its pid."""
  with open(log_path, 'ab') as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env,
                               start_new_session=True)
  return process.pid


def start_worker_pool(directory: str, index: int, port: int) -> int:
  return start_process(
      [sys.executable, '-m', 'pipeline.clusters.worker_pool',
       f'{pool_address(index)}:{port}'],
      os.path.join(directory, f'worker-pool-{index}.log'))


def alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:  # a zombie child of this process has finished
    with open(f'/proc/{pid}/stat') as f:
      return f.read().split(') ')[-1][:1] != 'Z'
  except OSError:
    return False


def stop_pid(pid: int, timeout: float = 15.0) -> None:
  """SIGTERM to the process's session, then SIGKILL to what is left."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
      os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
      try:
        os.kill(pid, sig)
      except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      try:
        os.waitpid(pid, os.WNOHANG)
      except ChildProcessError:
        pass
      if not alive(pid):
        return
      time.sleep(0.1)


def port_open(port: int, host: str = '127.0.0.1') -> bool:
  with socket.socket() as s:
    s.settimeout(0.5)
    return s.connect_ex((host, port)) == 0


def endpoint_reachable(endpoint: str) -> bool:
  host, _, port = endpoint.rpartition(':')
  try:
    return port_open(int(port), host or 'localhost')
  except (ValueError, OSError):
    return False


def get_json(url: str) -> Optional[dict]:
  try:
    with urllib.request.urlopen(url, timeout=5) as response:
      return json.loads(response.read())
  except (urllib.error.URLError, OSError, ValueError):
    return None


def wait_until(ready: Callable[[], bool], what: str, timeout: float,
               log_path: str = '') -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if ready():
      return
    time.sleep(0.25)
  where = f'; see {log_path}' if log_path else ''
  raise ClusterError(f'{what} did not come up within {timeout:.0f} s{where}')


def check_ports_free(ports: List[int], engine: str) -> None:
  busy = [port for port in ports if port_open(port)]
  if busy:
    raise ClusterError(
        f'port {busy[0]} is in use on this machine: stop what holds it '
        f'(./mnist-tfx cluster down {engine} if it is a cluster) and retry')


def start_job_server(state: State, java_options: List[str], job_server: str,
                     driver_class: str, master_flag: str,
                     env: Dict[str, str]) -> None:
  """Starts Beam's job server for the engine (`driver_class`, its class path in
  `job_server`/lib) and waits until it and every worker pool answer."""
  ports = state.ports
  log = os.path.join(state.directory, 'job-server.log')
  state.pids['job-server'] = start_process(
      [os.path.join(java_home(), 'bin', 'java'), *java_options, '-cp',
       os.path.join(job_server, 'lib', '*'), driver_class,
       '--job-host=localhost', f'--job-port={ports.job}',
       f'--artifact-port={ports.artifact}', '--expansion-port=0', master_flag,
       f'--artifacts-dir={os.path.join(state.directory, "artifacts")}'],
      log, env)
  state.save()
  wait_until(lambda: port_open(ports.job),
             f"Beam's {state.engine} job server on port {ports.job}", 60, log)
  for index in range(1, state.workers + 1):
    wait_until(lambda i=index: port_open(ports.pool, pool_address(i)),
               f'worker pool {index}', 60,
               os.path.join(state.directory, f'worker-pool-{index}.log'))


def _artifact(jar_name: str) -> str:
  """`jackson-core-2.15.4.jar` -> `jackson-core`."""
  return re.sub(r'-\d[^-]*(-[A-Za-z][\w.]*)?\.jar$', '', jar_name)


def runner_class_path(target: str, job_server: str, engine_jars: List[str],
                      exclude: Tuple[str, ...]) -> None:
  """Puts into `target` the job server's jars that the engine's own class path
  (`engine_jars`) lacks, less those whose names start with `exclude` (the
  engine's logging must stay the only binding).

  The engine's workers load Beam's runner from there once, instead of from
  the 150-270 MB Beam ships with every job by default, anew for each job.
  The engine's own copy of a library wins, as it does over the shipped jars.
  Hard links (copies across file systems), not symlinks: Beam's jars name
  their dependencies in their manifests, relative to where the jar really is.
  """
  present = {_artifact(os.path.basename(jar)) for jar in engine_jars}
  os.makedirs(target, exist_ok=True)
  lib = os.path.join(job_server, 'lib')
  for name in sorted(os.listdir(lib)):
    if (not name.endswith('.jar') or name.startswith(exclude)
        or _artifact(name) in present):
      continue
    try:
      os.link(os.path.join(lib, name), os.path.join(target, name))
    except OSError:
      shutil.copy2(os.path.join(lib, name), os.path.join(target, name))


def stop(state: State, engine_pids: List[int]) -> None:
  """Stops the job server and the worker pools, then the engine's own daemons
  (`engine_pids`, read from the pid files its scripts keep), and forgets the
  cluster."""
  for pid in list(state.pids.values()) + engine_pids:
    stop_pid(pid)
  os.remove(os.path.join(state.directory, STATE_FILE))


def read_pid_files(directory: str, prefix: str, marker: str) -> List[int]:
  """Pids from the engine's pid files in `directory` whose names start with
  `prefix` and contain `marker`."""
  pids = []
  for name in sorted(os.listdir(directory)):
    if name.startswith(prefix) and marker in name and name.endswith('.pid'):
      with open(os.path.join(directory, name)) as f:
        pids += [int(word) for word in f.read().split()]
  return pids


def run_script(command: List[str], env: Dict[str, str], state: State) -> None:
  """Runs one of the engine's start scripts; a failure names its last line."""
  result = subprocess.run(command, env=env, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['']
    raise ClusterError(f'{os.path.basename(command[0])} failed: {last[0]}; '
                       f'logs in {state.directory}')
