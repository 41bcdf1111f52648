"""Benchmarks: run from the project root as ``python -m benchmarks.<name>`` (see each module)."""
