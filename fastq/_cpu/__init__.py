"""Numba CPU kernels.  Twin of ``fastq._cuda``: same module and function names."""
from .._cache import drop_stale

drop_stale()  # (before any kernel module loads its cache)
