"""The server process helper (serving/model_servers/process.py): free ports,
start-and-wait, stop, and no server left behind by a killed caller. The real
server is started through it in test_main.py, test_server.py and others; here
its command is replaced by small scripts that misbehave."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline import config as config_lib
from serving.model_servers import process as process_lib


def _scripted(script: str, **settings) -> process_lib.ServerProcess:
  server = process_lib.ServerProcess(**settings)
  server.command = [sys.executable, '-c', script]
  return server


def test_free_ports_differ():
  ports = {process_lib.free_port() for _ in range(5)}
  assert len(ports) == 5 and all(1024 < p < 65536 for p in ports)


def test_command_is_python_m_serving_with_tf_serving_flags():
  server = process_lib.ServerProcess('--model_name=m', port=9000,
                                     rest_api_port=9001)
  assert server.command[1:] == ['-m', 'serving', '--host=127.0.0.1',
                                '--port=9000', '--rest_api_port=9001',
                                '--model_name=m']
  assert process_lib.ServerProcess().command.count('--rest_api_port=0') == 0


def test_a_server_that_exits_before_it_answers(tmp_path):
  log = tmp_path / 'server.log'
  server = _scripted('import sys; print("boom"); sys.exit(3)', log_path=str(log))
  with pytest.raises(process_lib.ServerExited, match=r'status 3\).*boom'):
    server.start(timeout=60)
  assert server.stop() == 3
  assert log.read_text() == 'boom\n'


def test_a_server_that_never_answers_is_stopped(tmp_path):
  server = _scripted('import time; time.sleep(600)')
  with pytest.raises(process_lib.ServerNotReady):
    server.start(timeout=1)
  assert not server.alive()


def test_a_server_that_ignores_sigterm_is_killed(tmp_path):
  server = _scripted('import signal, time; '
                     'signal.signal(signal.SIGTERM, signal.SIG_IGN); '
                     'print("ready", flush=True); time.sleep(600)').launch()
  deadline = time.monotonic() + 30
  while 'ready' not in server.text() and time.monotonic() < deadline:
    time.sleep(0.05)
  assert server.stop(grace_seconds=0.5) == -signal.SIGKILL


_ORPHAN_SCRIPT = """
import sys
from serving.model_servers import process
server = process.ServerProcess(die_with_parent=True)
server.command = [sys.executable, '-c', 'import time; time.sleep(600)']
server.launch()
print(server.pid, flush=True)
import time; time.sleep(600)
"""


def test_a_killed_caller_leaves_no_server_behind():
  parent = subprocess.Popen([sys.executable, '-c', _ORPHAN_SCRIPT],
                            stdout=subprocess.PIPE, text=True,
                            cwd=config_lib.REPO_ROOT)
  try:
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # running
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
      try:
        os.kill(child, 0)
      except ProcessLookupError:
        break
      # Reaped by init once it exits; until then it may linger as a zombie.
      try:
        with open(f'/proc/{child}/stat') as f:
          if f.read().split(') ', 1)[1].startswith('Z'):
            break
      except FileNotFoundError:
        break
      time.sleep(0.05)
    else:
      os.kill(child, signal.SIGKILL)
      pytest.fail('the server outlived the killed caller')
  finally:
    parent.kill()
    parent.wait()
