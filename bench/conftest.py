"""Benchmarks: fastq beside the installed peers on the same data, in the same run.

Run with ``python -m pytest bench --benchmark-only`` (pytest-benchmark), or print the
table with ``fastq bench`` (``--quick`` for a short run, ``--markdown`` for the README).
Not part of the test suite: ``pyproject.toml``'s testpaths is ``tests``.
"""
import os

os.environ.pop("OPENBLAS_CORETYPE", None)  # only inside the benchmark process
