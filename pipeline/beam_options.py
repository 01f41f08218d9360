"""The Beam pipeline option this project adds for its local clusters.

`BeamConfig.pipeline_args()` passes `--pipeline_resources_detector_factory_class`
to the Flink and Spark job servers that `mnist-tfx cluster up` starts, whose
workers already hold Beam's runner classes (pipeline/clusters/local.py): Beam's
Java option names the class that lists the jars to ship with a job, and
tools/engines/java/ provides one that lists none. The Python SDK passes on the
options its job server describes whether or not it knows them, but warns about
each one it does not know; declaring it here keeps every Beam step's log free
of that warning. Importing this module registers it.
"""

from apache_beam.options import pipeline_options


class ClusterClassPathOptions(pipeline_options.PipelineOptions):
  """Declares the Java job server's option to the Python SDK's parser."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        '--pipeline_resources_detector_factory_class', default=None,
        help='Java: the PipelineResourcesDetector.Factory that lists the jars '
        'the job server ships with each job (Beam: its whole class path).')
