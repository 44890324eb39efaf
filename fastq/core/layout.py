"""How work is laid out, shared by the twin backends so their results are bit-identical:
chunks of 1-D work, and the order of the metrics' partial sums.

These are structural constants, frozen into cached kernel code by design (kernels
import them at compile time: ``fastq.runtime.kernel_cache`` drops caches older than
this file).
"""

SERIAL_BELOW = 1 << 16  # elements: smaller arrays run in the calling thread, no thread launch
MAX_CHUNKS = 64  # chunks of a parallel pass at most
# Streaming kernels walk their slice in blocks of BLOCK elements (prefetching ahead).
BLOCK = 512
# Chunks start on a multiple of ALIGN elements: whole cache lines per thread, and no
# block straddles a multiple of 2**32 (the stochastic-rounding counter relies on it).
ALIGN = BLOCK
# Metrics: partial sums per chunk (element i goes to lane i % LANES; the lanes are added
# in order), which breaks the float add chain without fastmath and fixes the order.
LANES = 16
N_SUMS = 6  # sum|e|, sum e^2, sum x^2, sum x_hat^2, sum x*x_hat, max|e| bits


def n_chunks(n):
    """Chunks of a parallel pass over ``n`` elements: a quarter of ``SERIAL_BELOW`` each
    at least, ``MAX_CHUNKS`` at most."""
    return int(min(MAX_CHUNKS, max(1, n // (SERIAL_BELOW // 4))))


def chunk_count(rows, size):
    """Chunks of a pass over ``rows`` rows of ``size`` elements in all: none (serial)
    below ``SERIAL_BELOW`` elements or for one row, else one per row up to ``MAX_CHUNKS``."""
    if size < SERIAL_BELOW or rows == 1:
        return 0
    return min(rows, MAX_CHUNKS)
