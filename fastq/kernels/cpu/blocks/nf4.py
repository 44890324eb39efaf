"""NF4 kernels (CPU): per-block absmax and table indices over a flat float32 array in
blocks of ``block`` elements (the last one partial).

``encode``: ``v = x / absmax`` (float32 division; an all-zero block divides by 1), and
the index is the number of table midpoints strictly below ``v``: the nearest entry, a
tie going to the lower index (``mid``: each midpoint rounded down to float32, which a
float32 ``v`` exceeds exactly when it exceeds the exact midpoint).
"""
import numpy as np
from numba import njit, prange

from ..parallel import chunk_bounds, launch


@njit(cache=True, nogil=True)
def _absmax_slice(x, block, out, stream):
    for b in range(out.size):
        top = np.float32(0)
        for i in range(b * block, min((b + 1) * block, x.size)):
            top = max(top, abs(x[i]))
        out[b] = top


@njit(parallel=True, cache=True, nogil=True)
def _absmax_parallel(x, block, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(out.size, c, nchunks)
        _absmax_slice(x[start * block:stop * block], block, out[start:stop], stream)


def absmax(x, block, out):
    """``out[b] = max |x[b*block:(b+1)*block]|`` (NaN-free input)."""
    launch(_absmax_slice, _absmax_parallel, x, out, (x, block, out))


@njit(cache=True, nogil=True)
def _encode_slice(x, block, amax, mid, codes, stream):
    for b in range(amax.size):
        a = amax[b] if amax[b] > 0 else np.float32(1)
        for i in range(b * block, min((b + 1) * block, x.size)):
            v = x[i] / a
            k = 0
            for j in range(mid.size):
                k += v > mid[j]
            codes[i] = k


@njit(parallel=True, cache=True, nogil=True)
def _encode_parallel(x, block, amax, mid, codes, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(amax.size, c, nchunks)
        _encode_slice(x[start * block:stop * block], block, amax[start:stop], mid,
                      codes[start * block:stop * block], stream)


def encode(x, block, amax, mid, codes):
    """uint8 ``codes`` of the flat float32 ``x`` with the per-block ``amax``."""
    launch(_encode_slice, _encode_parallel, x, codes, (x, block, amax, mid, codes))
