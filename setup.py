"""Installs the MNIST TFX pipeline and its `mnist-tfx` command.

Dependencies are the pins of requirements.in (TFX 1.21 fixes most of the stack);
requirements.lock pins every transitive package for reproducible environments:
    pip install -c requirements.lock .
"""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
  with open(os.path.join(HERE, 'requirements.in')) as f:
    return [line.split('#')[0].strip() for line in f
            if line.split('#')[0].strip()]


setuptools.setup(
    name='mnist-tfx',
    version='0.1.0',
    description='MNIST on TensorFlow Extended: IDX ingestion, TFDV validation, '
    'TFT, a Keras CNN, TFMA evaluation against a baseline, and TF Serving.',
    python_requires='>=3.10,<3.14',
    packages=setuptools.find_packages(
        include=['pipeline', 'pipeline.*', 'components', 'components.*',
                 'models', 'models.*', 'serving', 'serving.*', 'kubeflow',
                 'kubeflow.*']),
    # Module files of Transform and Trainer live in namespace folders (no
    # __init__.py, see models/); the schema and manifests are data.
    package_data={
        'models': ['transform/*.py', 'trainer/*.py'],
        'pipeline': ['schema/*.pbtxt'],
        'kubeflow': ['*.yaml', '*.txt'],
        'serving': ['*.txt'],
    },
    install_requires=_requirements(),
    entry_points={'console_scripts': ['mnist-tfx=pipeline.cli:main']},
)
