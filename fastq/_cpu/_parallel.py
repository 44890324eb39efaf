"""How the CPU backend splits 1-D work into chunks for ``prange``."""
import numpy as np
from numba import njit

SERIAL_BELOW = 1 << 16  # elements; smaller arrays skip the thread launch
MAX_CHUNKS = 64
# Streaming kernels walk their slice in blocks of BLOCK elements, prefetching ahead
# (``_word.prefetch_ahead``).  A tuning constant, frozen into cached code by design.
BLOCK = 512
AHEAD = 4 * BLOCK  # how far ahead of a row loop to prefetch, in elements (8 KB of float32)
# Chunks start on a multiple of BLOCK elements: whole cache lines per thread, and no
# block straddles a multiple of 2**32 (the stochastic-rounding counter relies on it).
ALIGN = BLOCK


@njit(cache=True)
def chunk_bounds(n, c, nchunks):
    """Start and stop of chunk ``c`` of ``nchunks`` over ``n`` elements."""
    step = (n + nchunks - 1) // nchunks
    step = (step + ALIGN - 1) // ALIGN * ALIGN
    start = min(c * step, n)
    return start, min(start + step, n)


def n_chunks(n):
    return int(min(MAX_CHUNKS, max(1, n // (SERIAL_BELOW // 4))))
