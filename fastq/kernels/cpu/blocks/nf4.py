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
    m0, m1, m2, m3, m4, m5, m6, m7 = mid[0], mid[1], mid[2], mid[3], mid[4], mid[5], mid[6], mid[7]
    m8, m9, m10, m11, m12, m13, m14 = mid[8], mid[9], mid[10], mid[11], mid[12], mid[13], mid[14]
    for b in range(amax.size):
        a = amax[b] if amax[b] > 0 else np.float32(1)
        for i in range(b * block, min((b + 1) * block, x.size)):
            v = x[i] / a
            # how many of the 15 midpoints lie below v (compares against values held in
            # registers: the loop vectorizes, where a search would branch on the data)
            k = ((v > m0) + (v > m1) + (v > m2) + (v > m3) + (v > m4) + (v > m5)
                 + (v > m6) + (v > m7) + (v > m8) + (v > m9) + (v > m10) + (v > m11)
                 + (v > m12) + (v > m13) + (v > m14))
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
