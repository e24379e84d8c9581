"""Benchmarks that print figures as JSON: ``python -m bench.load``, ``bench.growth``, ``bench.memory``."""
