"""The `mnist-tfx` group (main.py) and a user's mistake: one line that says what to
do, exit 1 (2 for a wrong command line), and nothing changed on disk.

Every case runs `mnist-tfx` as a real process (`python -m pipeline.cli`, what the
wrapper and the entry point run), so TensorFlow's start-up output would show too.
"""

import os
import shutil
import socket

import pytest

from tests.testutil.cli import assert_one_line_error
from tests.testutil.cli import mnist_tfx
from tests.testutil.cli import snapshot
from tests.testutil.mnist_files import write_slice

# Every test here starts model-server or mnist-tfx processes.
pytestmark = pytest.mark.processes

BAD_SET = ('--set', 'training.augment=ture')


@pytest.fixture
def workdir(tmp_path):
  """A working directory with an output dir holding no run and one whose ML
  Metadata file is corrupt."""
  (tmp_path / 'empty').mkdir()
  metadata = tmp_path / 'corrupt' / 'metadata' / 'mnist-tfx'
  metadata.mkdir(parents=True)
  (metadata / 'metadata.sqlite').write_bytes(b'not a database' * 400)
  return tmp_path


@pytest.mark.parametrize('command', ['report', 'lineage', 'stats'])
@pytest.mark.parametrize('case', ['no run', 'corrupt metadata', 'bad --set'])
def test_commands_reading_a_run(workdir, command, case):
  before = snapshot(workdir)
  if case == 'no run':
    result = mnist_tfx(command, '--output-dir', 'empty', cwd=workdir)
    assert_one_line_error(result, 1, f'no pipeline run in {workdir}/empty',
                          'run `mnist-tfx run` first')
  elif case == 'corrupt metadata':
    result = mnist_tfx(command, '--output-dir', 'corrupt', cwd=workdir)
    assert_one_line_error(result, 1, 'metadata.sqlite is not a readable ML Metadata '
                          'database (file is not a database): move it away')
  else:
    result = mnist_tfx(command, '--output-dir', 'empty', *BAD_SET, cwd=workdir)
    assert_one_line_error(result, 2, "training.augment='ture': expected true or "
                          'false', f'mnist-tfx {command} --help')
  assert snapshot(workdir) == before


def test_lineage_of_a_version_that_was_never_pushed(smoke_pipeline, tmp_path):
  before = snapshot(smoke_pipeline.abs_output_dir)
  result = mnist_tfx('lineage', '--profile', 'smoke', '--output-dir',
                     smoke_pipeline.abs_output_dir, '--version', '99', cwd=tmp_path)
  assert_one_line_error(result, 1, f'no version 99 in '
                        f'{smoke_pipeline.model_base_path}: it holds 1')
  assert snapshot(smoke_pipeline.abs_output_dir) == before


def test_lineage_when_nothing_was_pushed(smoke_pipeline, tmp_path):
  output_dir = tmp_path / 'out'
  shutil.copytree(os.path.dirname(os.path.dirname(smoke_pipeline.metadata_path)),
                  output_dir / 'metadata')
  before = snapshot(tmp_path)
  result = mnist_tfx('lineage', '--output-dir', str(output_dir), cwd=tmp_path)
  assert_one_line_error(result, 1, 'no model pushed to '
                        f'{output_dir}/serving/mnist')
  assert snapshot(tmp_path) == before


@pytest.mark.parametrize('case', ['corrupt metadata', 'bad --set'])
def test_run_refuses_before_writing(workdir, small_mnist_dir, case):
  before, data_before = snapshot(workdir), snapshot(small_mnist_dir)
  if case == 'corrupt metadata':
    result = mnist_tfx('run', '--profile', 'smoke', '--data-dir', small_mnist_dir,
                       '--output-dir', 'corrupt', cwd=workdir)
    assert_one_line_error(result, 1, 'is not a readable ML Metadata database')
  else:
    result = mnist_tfx('run', '--profile', 'smoke', '--data-dir', small_mnist_dir,
                       '--output-dir', 'out', *BAD_SET, cwd=workdir)
    assert_one_line_error(result, 2, "expected true or false")
  assert snapshot(workdir) == before
  assert snapshot(small_mnist_dir) == data_before


@pytest.mark.parametrize('missing', [
    ['t10k-labels-idx1-ubyte.gz'],
    ['train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz'],
])
@pytest.mark.parametrize('how', ['--data-dir', '--set'])
def test_run_never_fetches_into_a_named_data_dir(mnist_dir, tmp_path, missing, how):
  user_data = str(tmp_path / 'user-data')
  write_slice(mnist_dir, user_data, train=300, test=100, gzipped=True)
  for name in missing:
    os.remove(os.path.join(user_data, name))
  before = snapshot(tmp_path)
  named = (['--data-dir', user_data] if how == '--data-dir' else
           ['--set', f'data_dir={user_data}'])
  result = mnist_tfx('run', '--profile', 'smoke', *named, '--output-dir', 'out',
                     cwd=tmp_path)
  wanted = ', '.join(name[:-len('.gz')] for name in missing)
  assert_one_line_error(result, 1, f'{user_data} lacks {wanted} (raw or .gz)')
  assert snapshot(tmp_path) == before  # the user's files, byte for byte; no output


def test_run_on_a_data_dir_that_does_not_exist(tmp_path):
  result = mnist_tfx('run', '--data-dir', 'nowhere', cwd=tmp_path)
  assert_one_line_error(result, 1, f'data directory {tmp_path}/nowhere does not '
                        'exist')
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('case', ['foreign files', 'bad --set'])
def test_fetch_data_never_replaces_files(mnist_dir, tmp_path, case):
  user_data = tmp_path / 'user-data'
  write_slice(mnist_dir, str(user_data), train=300, test=100)  # raw, not MNIST's
  before = snapshot(tmp_path)
  if case == 'foreign files':
    result = mnist_tfx('fetch-data', '--data-dir', str(user_data), cwd=tmp_path)
    assert_one_line_error(result, 1, 'train-images-idx3-ubyte',
                          'are not the original MNIST files',
                          'files are never replaced')
  else:
    result = mnist_tfx('fetch-data', *BAD_SET, cwd=tmp_path)
    assert_one_line_error(result, 2, 'expected true or false')
  assert snapshot(tmp_path) == before


def test_serve_without_a_pushed_model(workdir):
  before = snapshot(workdir)
  result = mnist_tfx('serve', '--output-dir', 'empty', cwd=workdir)
  assert_one_line_error(result, 1, f'no model pushed to {workdir}/empty/serving/'
                        'mnist: run `mnist-tfx run` first')
  assert snapshot(workdir) == before


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize('protocol', ['grpc', 'rest'])
def test_predict_with_no_server(small_mnist_dir, tmp_path, protocol):
  target = f'127.0.0.1:{_closed_port()}'
  result = mnist_tfx('predict', '--index', '0', '--data-dir', small_mnist_dir,
                     '--server', target, '--protocol', protocol, cwd=tmp_path)
  assert_one_line_error(result, 1, f'no model server answers at {target} '
                        f'({protocol}): start one with `mnist-tfx serve`')
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('case', ['bad --set', 'missing settings'])
def test_compile(tmp_path, case):
  if case == 'bad --set':
    result = mnist_tfx('compile', '--set', 'kubeflow.trainer_gpus=two',
                       cwd=tmp_path)
    assert_one_line_error(result, 2, "kubeflow.trainer_gpus='two': expected an "
                          'integer')
  else:
    result = mnist_tfx('compile', cwd=tmp_path)
    assert_one_line_error(result, 2, 'kubeflow.image')
  assert os.listdir(tmp_path) == []


def test_help_names_the_command_and_lists_every_command(tmp_path):
  result = mnist_tfx('--help', cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('Usage: mnist-tfx [OPTIONS] COMMAND')
  listed = {line.split()[0] for line in
            result.stdout.split('Commands:')[1].strip().splitlines()}
  assert {'run', 'test', 'shell', 'serve', 'predict', 'compile', 'report', 'stats',
          'lineage', 'fetch-data'} <= listed


def test_version(tmp_path):
  import pipeline  # pylint: disable=g-import-not-at-top
  result = mnist_tfx('--version', cwd=tmp_path)
  assert (result.returncode, result.stdout) == (0, f'mnist-tfx {pipeline.__version__}\n')


def test_an_unknown_option_is_a_usage_error(tmp_path):
  assert_one_line_error(mnist_tfx('run', '--bogus', cwd=tmp_path), 2,
                        "No such option '--bogus'", 'mnist-tfx run --help')
