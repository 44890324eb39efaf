"""One-pass error statistics of an approximation ``x_hat`` of ``x`` (CPU).

Each chunk accumulates, in float64, ``sum|e|``, ``sum e**2``, ``sum x**2``,
``sum x_hat**2`` and ``sum x*x_hat`` (``e = x - x_hat``) and the largest ``|e|``.  The
sums run in ``LANES`` independent partial sums (fixed order, so the result never depends
on the thread count, only on the array size), which breaks the float add dependency
chain without ``fastmath``.  ``max|e|`` reduces the uint64 bits of ``|e|``: for
non-negative floats they order as the values, and a NaN's bits exceed inf's, so a NaN
error shows up as a NaN maximum.
"""
import numpy as np
from numba import njit, prange

from ...core.layout import LANES, N_SUMS, SERIAL_BELOW, n_chunks
from ...runtime.threads import parallel_region
from .parallel import chunk_bounds
from .word import FP_NEAREST_EVEN, as_bits, as_float, swap_fp_control


@njit(cache=True, nogil=True)
def error_sums(x, x_hat, out):
    """Write the six statistics of the 1-D ``x``, ``x_hat`` (same size) into ``out``.

    ``out[:5]`` = ``sum|e|, sum e^2, sum x^2, sum x_hat^2, sum x*x_hat`` (float64),
    ``out[5]`` = ``max|e|`` (a NaN when any ``e`` is NaN; 0 for empty input).
    Element ``i`` goes to partial sum ``i % LANES``; the lanes are added in order at the end.
    """
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (no flushing to zero)
    acc = np.zeros((5, LANES))
    keys = np.zeros(LANES, np.uint64)
    full = x.size // LANES * LANES
    xs, hs = x[:full].reshape((-1, LANES)), x_hat[:full].reshape((-1, LANES))
    for g in range(xs.shape[0]):
        s0, s1, s2, s3, s4 = acc[0], acc[1], acc[2], acc[3], acc[4]
        xb, hb = xs[g], hs[g]
        for j in range(LANES):  # a constant trip count: vectorized across the lanes
            a, b = np.float64(xb[j]), np.float64(hb[j])
            e = a - b
            ae = abs(e)
            s0[j] += ae
            s1[j] += e * e
            s2[j] += a * a
            s3[j] += b * b
            s4[j] += a * b
            keys[j] = max(keys[j], as_bits(ae))
    for i in range(x.size - full):
        a, b = np.float64(x[full + i]), np.float64(x_hat[full + i])
        e = a - b
        acc[0, i] += abs(e)
        acc[1, i] += e * e
        acc[2, i] += a * a
        acc[3, i] += b * b
        acc[4, i] += a * b
        keys[i] = max(keys[i], as_bits(abs(e)))
    for k in range(5):
        total = 0.0
        for j in range(LANES):
            total += acc[k, j]
        out[k] = total
    out[5] = as_float(keys.max())
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _error_sums_parallel(x, x_hat, partial, nchunks):
    for c in prange(nchunks):
        start, stop = chunk_bounds(x.size, c, nchunks)
        error_sums(x[start:stop], x_hat[start:stop], partial[c])


def error_stats(x, x_hat):
    """The six statistics of :func:`error_sums` for 1-D contiguous arrays of any size."""
    if x.size < SERIAL_BELOW:
        out = np.empty(N_SUMS)
        error_sums(x, x_hat, out)
        return out
    nchunks = n_chunks(x.size)
    partial = np.zeros((nchunks, N_SUMS))
    with parallel_region():
        _error_sums_parallel(x, x_hat, partial, nchunks)
    out = partial.sum(axis=0)  # chunk order: deterministic
    keys = partial[:, 5].view(np.uint64)
    out[5] = partial[int(np.argmax(keys)), 5]
    return out
