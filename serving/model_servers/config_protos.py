"""TF Serving's MonitoringConfig and SSLConfig messages, for reading their files.

tensorflow-serving-api's wheel ships the model server config protos but not
tensorflow_serving/config/monitoring_config.proto and ssl_config.proto, whose text
files --monitoring_config_file and --ssl_config_file name. Their messages are
rebuilt here from the same package, names, field numbers and types, so protobuf's
own text_format parses (and rejects) those files exactly as TF Serving does.
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format

_PACKAGE = 'tensorflow.serving'
_FILE = 'mnist_tfx/tensorflow_serving_config.proto'
_Field = descriptor_pb2.FieldDescriptorProto

# message -> [(field, number, type, message type name for TYPE_MESSAGE)]
_MESSAGES = {
    # monitoring_config.proto
    'PrometheusConfig': [('enable', 1, _Field.TYPE_BOOL, None),
                         ('path', 2, _Field.TYPE_STRING, None)],
    'MonitoringConfig': [('prometheus_config', 1, _Field.TYPE_MESSAGE,
                          'PrometheusConfig')],
    # ssl_config.proto
    'SSLConfig': [('server_key', 1, _Field.TYPE_STRING, None),
                  ('server_cert', 2, _Field.TYPE_STRING, None),
                  ('custom_ca', 3, _Field.TYPE_STRING, None),
                  ('client_verify', 4, _Field.TYPE_BOOL, None)],
}


def _build():
  file_proto = descriptor_pb2.FileDescriptorProto(
      name=_FILE, package=_PACKAGE, syntax='proto3')
  for name, fields in _MESSAGES.items():
    message = file_proto.message_type.add(name=name)
    for field_name, number, field_type, type_name in fields:
      field = message.field.add(name=field_name, number=number, type=field_type,
                                label=_Field.LABEL_OPTIONAL)
      if type_name:
        field.type_name = f'.{_PACKAGE}.{type_name}'
  pool = descriptor_pool.DescriptorPool()
  pool.Add(file_proto)
  return {name: message_factory.GetMessageClass(
      pool.FindMessageTypeByName(f'{_PACKAGE}.{name}')) for name in _MESSAGES}


_CLASSES = _build()
MonitoringConfig = _CLASSES['MonitoringConfig']
SSLConfig = _CLASSES['SSLConfig']


def read_text_proto(path: str, message_class):
  """Parses the text proto file `path`; text_format.ParseError on bad text."""
  with open(path) as f:
    return text_format.Parse(f.read(), message_class())
