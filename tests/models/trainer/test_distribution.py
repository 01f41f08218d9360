"""Which precision the Trainer computes in, from what the hardware offers, and
which processes train together."""

import json
import types

import pytest
import tensorflow as tf

from models.trainer import distribution

_ZEN4 = 'fpu vme avx2 avx512f avx512_bf16 avx512_vnni'
_SAPPHIRE_RAPIDS = 'fpu avx2 avx512f amx_bf16 amx_tile amx_int8'
_SKYLAKE = 'fpu vme avx2 avx512f avx512dq avx512_vnni'


def _cpuinfo(tmp_path, flags):
  path = tmp_path / 'cpuinfo'
  path.write_text(f'processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\n'
                  f'bugs\t\t: avx512_bf16_is_not_a_bug\n\n')
  return str(path)


@pytest.mark.parametrize('flags, native', [
    (_ZEN4, True), (_SAPPHIRE_RAPIDS, True), (_SKYLAKE, False)])
def test_bfloat16_hardware_is_read_from_the_cpu_flags(tmp_path, flags, native):
  assert distribution.cpu_has_native_bfloat16(_cpuinfo(tmp_path, flags)) is native


def test_no_cpuinfo_means_no_bfloat16(tmp_path):
  assert not distribution.cpu_has_native_bfloat16(str(tmp_path / 'missing'))


@pytest.mark.parametrize('device, policy', [
    ('GPU', 'mixed_float16'), ('TPU', 'mixed_bfloat16')])
def test_accelerators_get_their_16_bit_type(device, policy):
  assert distribution.precision_policy(True, device) == policy
  assert distribution.precision_policy(False, device) == 'float32'


def test_the_cpu_computes_in_bfloat16_only_where_it_has_it(tmp_path):
  for flags, policy in ((_ZEN4, 'mixed_bfloat16'), (_SKYLAKE, 'float32')):
    cpuinfo = _cpuinfo(tmp_path, flags)
    assert distribution.precision_policy(True, 'CPU', cpuinfo) == policy
    assert distribution.precision_policy(False, 'CPU', cpuinfo) == 'float32'


def test_tensorflow_computes_with_onednn_here():
  """./mnist-tfx turns oneDNN's kernels on (tools/environment.sh) also on CPUs
  where TensorFlow would not by itself (AVX2 only: 3x slower training without);
  this checks that the setting reaches TensorFlow inside the environment."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  assert _pywrap_util_port.IsMklEnabled()


def test_tf_config_names_the_cluster(monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  assert distribution.cluster_workers() == 0
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'chief': ['a:1'], 'worker': ['b:1', 'c:1'], 'ps': ['d:1']},
      'task': {'type': 'worker', 'index': 0}}))
  assert distribution.cluster_workers() == 3  # parameter servers do not train
  monkeypatch.setenv('TF_CONFIG', 'not json')
  with pytest.raises(ValueError, match='TF_CONFIG is not JSON'):
    distribution.cluster_workers()


def test_the_chief_is_the_chief_task_else_worker_0():
  def strategy(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)
  workers = {'worker': ['a:1', 'b:1']}
  assert distribution.is_chief(strategy(workers, 'worker', 0))
  assert not distribution.is_chief(strategy(workers, 'worker', 1))
  with_chief = {'chief': ['c:1'], **workers}
  assert distribution.is_chief(strategy(with_chief, 'chief', 0))
  assert not distribution.is_chief(strategy(with_chief, 'worker', 0))
  assert distribution.is_chief(tf.distribute.get_strategy())  # one process
