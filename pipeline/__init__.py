"""The MNIST TFX pipeline: configuration, the pipeline factory, runners and the CLI."""

__version__ = '0.2.0'  # the package version (pyproject.toml reads it from here)
