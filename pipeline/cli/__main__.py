"""`python -m pipeline.cli`: what the `mnist-tfx` launcher and entry point run."""

from pipeline.cli.main import main

main(prog_name='mnist-tfx')  # pylint: disable=no-value-for-parameter
