"""Checks that the optional CUDA backend can be used, without importing it eagerly."""


def require_cuda():
    """Raise a clear error when ``backend="cuda"`` cannot run here."""
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships numba.cuda today
        raise RuntimeError(
            "backend='cuda' needs numba's CUDA support: pip install 'fastq[cuda]'") from exc
    if not cuda.is_available():
        raise RuntimeError(
            "backend='cuda' needs a CUDA GPU and driver (or NUMBA_ENABLE_CUDASIM=1 for the "
            "simulator); none is available: install 'fastq[cuda]' on a machine with a GPU")
