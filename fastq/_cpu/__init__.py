"""Numba CPU kernels.  Twin of ``fastq._cuda``: same module and function names."""
