"""The element codec of the extended formats (8 bits or fewer): float8_e4m3fn,
float8_e5m2, float4_e2m1fn and float8_e8m0fnu (CPU).

Decoding is a lookup in the 256-entry table of the target's bits
(``fastq.core.formats.decode_table``): exact, and one load per element.  Encoding to
the signed formats is the generic rounding of ``fastq.kernels.cpu.cast`` with their
parameters; this module adds E8M0, which has no sign, no zero and no mantissa, with
ml_dtypes' rule (``fastq.core.formats.e8m0_params``, whose ``X_*`` indices the kernels
read): the biased exponent of ``|x| + half an exponent step``, rebiased to 127.
"""
import numpy as np
from numba import njit, prange

from ...core import formats as F
from .floatbits.rounding import random_word, stream_keys
from .parallel import BLOCK, chunk_bounds, launch
from .word import add, band, bit_width, like, shl, shr, sub

U64 = np.uint64


@njit(cache=True, nogil=True)
def _decode_slice(src, dst, table, stream):
    for i in range(src.size):
        dst[i] = table[src[i]]


@njit(parallel=True, cache=True, nogil=True)
def _decode_parallel(src, dst, table, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _decode_slice(src[start:stop], dst[start:stop], table, stream)


def decode(src, dst, table):
    """``dst[i] = table[src[i]]``: the 1-D uint8 codes ``src`` into the words ``dst``."""
    launch(_decode_slice, _decode_parallel, src, dst, (src, dst, table))


@njit(cache=True, nogil=True, inline="always")
def _e8m0_code(b, up, p, sub_up):
    """The E8M0 code of the source bits ``b``, adding ``up`` (< one exponent step) to the
    magnitude of a normal source and ``sub_up`` to twice the excess of a subnormal one."""
    m_bits, rebias, abs_mask = p[F.X_MANT_BITS], p[F.X_REBIAS], p[F.X_ABS_MASK]
    inf_bits, norm_min, sub_one = p[F.X_INF_BITS], p[F.X_NORM_MIN], p[F.X_SUB_ONE]
    a = band(b, abs_mask)
    t = shr(add(a, up), m_bits)
    code = min(sub(max(t, rebias), rebias), p[F.X_OVF_CODE])
    if sub_one < norm_min and a < norm_min:  # float32 subnormal: code 0 or 1
        half = shr(norm_min, like(a, 1))
        excess = shl(sub(max(a, half), half), like(a, 1))
        code = shr(add(excess, sub_up), m_bits)
    code = p[F.X_INF_OUT] if a == inf_bits else code
    return like(b, 0xFF) if a == 0 or a > inf_bits or b != a else code


@njit(cache=True, nogil=True)
def _encode_e8m0_slice(src, dst, p, stream):
    half = p[F.X_HALF]
    sub_half = sub(p[F.X_NORM_MIN], p[F.X_SUB_ONE])  # (twice the excess reaches 2**M at sub_one)
    sub_half = shl(sub_half, like(half, 1))
    for i in range(src.size):
        dst[i] = _e8m0_code(src[i], half, p, sub_half)


@njit(parallel=True, cache=True, nogil=True)
def _encode_e8m0_parallel(src, dst, p, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _encode_e8m0_slice(src[start:stop], dst[start:stop], p, stream)


@njit(cache=True, nogil=True)
def _stochastic_e8m0_slice(src, dst, p, key, offset, stream):
    """Up with probability equal to the discarded fraction of the exponent step, by the
    random word of ``fastq.kernels.cpu.floatbits.rounding`` (the same stream for the same
    index)."""
    m_bits = p[F.X_MANT_BITS]
    drop = sub(like(m_bits, bit_width(m_bits)), m_bits)
    for start in range(0, src.size, BLOCK):
        base = U64(offset + start)  # blocks never straddle a multiple of 2**32
        k1, k2 = stream_keys(key, base >> U64(32))
        lo = np.uint32(base & U64(0xFFFFFFFF))
        stop = min(start + BLOCK, src.size)
        for i in range(start, stop):
            b = src[i]
            up = shr(random_word(b, add(lo, np.uint32(i - start)), k1, k2), drop)
            dst[i] = _e8m0_code(b, up, p, up)


@njit(parallel=True, cache=True, nogil=True)
def _stochastic_e8m0_parallel(src, dst, p, key, offset, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _stochastic_e8m0_slice(src[start:stop], dst[start:stop], p, key, offset + start,
                               stream)


def encode_e8m0(src, dst, params, rounding, key):
    """E8M0 codes of the 1-D float32/float64 bits ``src`` into the uint8 ``dst``.

    ``rounding``: 0 toward zero / 1 nearest (both in ``params``), 2 stochastic with the
    64-bit ``key`` (element ``i``'s word as in ``fastq.kernels.cpu.floatbits.rounding``)."""
    if rounding == 2:
        launch(_stochastic_e8m0_slice, _stochastic_e8m0_parallel, src, dst,
               (src, dst, params, key, 0))
    else:
        launch(_encode_e8m0_slice, _encode_e8m0_parallel, src, dst, (src, dst, params))
