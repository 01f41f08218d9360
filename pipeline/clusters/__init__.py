"""Flink and Spark clusters on this machine, for the Beam steps (`mnist-tfx cluster`)."""
