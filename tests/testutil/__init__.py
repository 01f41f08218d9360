"""What the tests share besides fixtures: data files, stand-in models, requests,
servers and command lines. Fixtures live in the conftest.py files; tests import
from here, never from conftest.py or from one another (tests/test_import_graph.py).
"""
