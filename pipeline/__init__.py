"""The MNIST TFX pipeline: configuration, the pipeline factory, the local runner,
the data fetch, ML Metadata reading, the reports (reports/) and the `mnist-tfx`
command line (cli/)."""

__version__ = '0.2.0'  # the package version (pyproject.toml reads it from here)
