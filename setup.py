"""A shim for tools that still run setup.py: pyproject.toml is the source.

Name, version, dependencies (requirements.in, the `test` extra from
requirements-test.in), packages, package data and the `mnist-tfx` command are all
declared in pyproject.toml; install with pip:
    pip install -e '.[test]' -c requirements.lock
"""

import setuptools

setuptools.setup()
