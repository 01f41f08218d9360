"""The `mnist-tfx` command line: main.py gathers the commands of every package
(pipeline_commands.py here, serving/commands.py, kubeflow/commands.py) into one
group; `python -m pipeline.cli` runs it.

Nothing outside this package imports it. The options those commands share
(pipeline/cli_options.py) and the terminal handling (pipeline/output_capture.py)
stay outside it: serving/ and kubeflow/ import them, and this package imports
serving/ and kubeflow/.
"""
