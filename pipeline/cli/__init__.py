"""The `mnist-tfx` command line, the top layer of the project.

The commands of every package live here, one module per package they drive
(pipeline_commands.py, serving_commands.py, kubeflow_commands.py), with the options
they share (config_options.py) and the terminal handling (output_capture.py);
main.py gathers them into one group and `python -m pipeline.cli` runs it.

This package imports every other one (pipeline/, pipeline/reports/, kubeflow/,
components/, serving/, models/) and none of them imports it, so imports point one
way (tests/test_import_graph.py).
"""
