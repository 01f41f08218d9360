"""tools/engines.sh without the network: what it says where Java or Maven is
missing, and that every file it fetches has a pinned checksum to meet."""

import os
import re
import shutil
import subprocess

import pytest

from pipeline import config as config_lib

pytestmark = pytest.mark.packaging

ENGINES_SH = os.path.join(config_lib.REPO_ROOT, 'tools', 'engines.sh')
SUMS = os.path.join(config_lib.REPO_ROOT, 'tools', 'engines', 'SHA256SUMS')


def _path_with(tmp_path, *tools):
  """A PATH holding only `tools` (and what the script needs to start)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('dirname', 'cat', 'sha256sum', 'cut') + tools:
    found = shutil.which(tool)
    if found:
      os.symlink(found, bin_dir / tool)
  return str(bin_dir)


def _check(path):
  return subprocess.run(['/bin/bash', ENGINES_SH, 'check'],
                        env={'PATH': path, 'HOME': os.environ['HOME']},
                        capture_output=True, text=True, check=False)


def test_without_java_one_line_says_what_to_install(tmp_path):
  result = _check(_path_with(tmp_path, 'mvn'))
  assert result.returncode == 1
  assert result.stderr.count('\n') == 1, result.stderr
  assert 'openjdk-17-jdk-headless' in result.stderr


def test_without_maven_one_line_says_what_to_install(tmp_path):
  # A stand-in java and javac: only their presence is checked.
  bin_dir = tmp_path / 'fake'
  bin_dir.mkdir()
  for tool in ('java', 'javac'):
    (bin_dir / tool).write_text('#!/bin/sh\n')
    (bin_dir / tool).chmod(0o755)
  result = _check(_path_with(tmp_path) + os.pathsep + str(bin_dir))
  assert result.returncode == 1
  assert result.stderr.count('\n') == 1, result.stderr
  assert 'install maven' in result.stderr


def test_every_download_has_one_pinned_sha256():
  with open(SUMS) as f:
    lines = f.read().splitlines()
  names = [line.split('  ', 1)[1] for line in lines]
  assert all(re.fullmatch(r'[0-9a-f]{64}  \S+', line) for line in lines)
  assert len(names) == len(set(names))
  with open(ENGINES_SH) as f:
    script = f.read()
  versions = dict(re.findall(r'^([A-Z_]+_VERSION)=(\S+)', script, re.M))
  # The distributions and the sources the recipe names are among them.
  for expected in (f'apache-flink-libraries-{versions["FLINK_VERSION"]}.tar.gz',
                   f'pyspark-{versions["SPARK_VERSION"]}.tar.gz',
                   f'beam-runners-flink-1.19-{versions["BEAM_VERSION"]}.jar',
                   f'beam-runners-spark-3-{versions["BEAM_VERSION"]}.jar',
                   'beam-runners-java-job-service-'
                   f'{versions["JOB_SERVICE_SOURCES_VERSION"]}-sources.jar'):
    assert expected in names, expected


def test_job_servers_are_the_beam_version_of_the_environment():
  with open(ENGINES_SH) as f:
    beam = re.search(r'^BEAM_VERSION=(\S+)', f.read(), re.M).group(1)
  with open(os.path.join(config_lib.REPO_ROOT, 'requirements.lock')) as f:
    assert f'apache-beam=={beam}' in f.read().split()
  for pom in ('flink-job-server.pom.xml', 'spark-job-server.pom.xml'):
    with open(os.path.join(config_lib.REPO_ROOT, 'tools', 'engines', pom)) as f:
      assert f'<beam.version>{beam}</beam.version>' in f.read()
