"""GGML legacy block formats (CPU): q8_0, q4_0, q4_1, q5_0, q5_1.

Backend interface (the same names in the CUDA twin, where there is one):

* ``quantize(x, kind, out) -> (nan_blocks, overflow_blocks)``: the float32 vector ``x``
  (whole blocks of 32) into the GGML block bytes ``out`` (uint8, ``block_bytes`` per
  block); counts the blocks holding a NaN and those whose float16 scale (or minimum)
  overflows (their bytes are written anyway: the caller raises).
* ``dequantize(data, kind, out)``: block bytes to float32 ``out``.
* ``codes(data, kind, out)``: each element's stored code (uint8; q8_0's int8 bits).

``kind`` is the format's number in ``fastq.ops.formats.ggml.LEGACY``: 0 q8_0, 1 q4_0,
2 q4_1, 3 q5_0, 4 q5_1.  The arithmetic is that of llama.cpp's reference quantizer
(``quantize_row_q4_0_ref`` etc. in ``ggml/src/ggml-quants.c``, MIT) as the ``gguf``
package's NumPy port writes it (``gguf.quants.Q4_0.quantize_blocks``): float32
throughout, ``d = max / -8`` with ``max`` the first element of largest magnitude,
``id = 1 / d`` (0 when ``d == 0``), codes ``trunc(x * id + 8.5)`` capped at 15; q8_0 codes
``roundf(x * id)`` (half away from zero); q4_1/q5_1 ``d = (max - min) / 15`` (31), codes
``trunc((x - min) * id + 0.5)``.  A float to code conversion that NumPy's (x86) would
leave undefined (NaN, inf: met when ``1 / d`` overflows for subnormal ``d``) gives 0, as
NumPy's does there; a negative truncation wraps modulo 256 before the cap, as NumPy's
``astype(np.uint8)`` does.
"""
import numpy as np
from numba import njit, prange

from ....runtime.threads import parallel_region
from ..parallel import n_chunks
from ..word import as_bits, as_float

BLOCK = 32  # elements of a block (GGML's QK4_0 etc.; the kernels spell it out)


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of one block: q8_0 34, q4_0 18, q4_1 20, q5_0 22, q5_1 24."""
    return 34 if kind == 0 else 18 + 2 * (kind - 1)


@njit(cache=True, nogil=True, inline="always")
def half_bits(f):
    """IEEE binary16 bits of the float32 ``f``, rounded half to even (NumPy's
    ``astype(np.float16)``); 0x7c00 (inf, with sign) from 65520 up; NaN 0x7e00."""
    u = np.int64(as_bits(f))
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a > 0x7F800000:
        return sign | 0x7E00
    if a >= 0x477FF000:  # 65520: rounds to inf
        return sign | 0x7C00
    if a < 0x38800000:  # below 2**-14: a subnormal half; the float add rounds it (RNE)
        magic = as_float(np.uint32(0x3F000000))  # 0.5: aligns 2**-24 with the last bit
        r = np.int64(as_bits(as_float(np.uint32(a)) + magic)) - 0x3F000000
        return sign | r
    mant_odd = (a >> 13) & 1
    a = a + (((15 - 127) << 23) + 0xFFF) + mant_odd
    return sign | (a >> 13)


@njit(cache=True, nogil=True, inline="always")
def half_value(h):
    """The float32 value of the binary16 bits ``h`` (exact)."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:  # zero or subnormal: m * 2**-24, exact in float32
        v = np.float32(m) * np.float32(5.9604644775390625e-08)
        return -v if sign else v
    if e == 31:
        return as_float(np.uint32(sign | 0x7F800000 | (m << 13)))
    return as_float(np.uint32(sign | ((e + 112) << 23) | (m << 13)))


@njit(cache=True, nogil=True, inline="always")
def to_byte(v):
    """NumPy's (x86) float32 -> uint8 of a truncated value: the low byte of the int32
    conversion, 0 where that is undefined (NaN, inf, out of range)."""
    if not (abs(v) < np.float32(2147483648.0)):
        return 0
    return np.int64(v) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def round_away(v):
    """``roundf``: half away from zero, exactly (``gguf.quants.np_roundf``)."""
    a = abs(v)
    f = np.floor(a)
    r = f + np.float32(1.0) if a - f >= np.float32(0.5) else f
    return -r if v < 0 else r


@njit(cache=True, nogil=True, inline="always")
def put_half(out, o, bits):
    out[o] = bits & 0xFF
    out[o + 1] = (bits >> 8) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def get_half(data, o):
    return half_value(np.int64(data[o]) | (np.int64(data[o + 1]) << 8))


@njit(cache=True, nogil=True, inline="always")
def _abs_max(x, i0):
    """Bits of the largest magnitude of ``x[i0:i0+32]`` (above 0x7f800000: a NaN) and
    the first element with it."""
    top = np.uint32(0)
    for j in range(32):
        top = max(top, as_bits(x[i0 + j]) & np.uint32(0x7FFFFFFF))
    first = 0
    for j in range(31, -1, -1):
        if as_bits(x[i0 + j]) & np.uint32(0x7FFFFFFF) == top:
            first = j
    return top, x[i0 + first]


@njit(cache=True, nogil=True, inline="always")
def _min_max(x, i0):
    """``min`` and ``max`` of ``x[i0:i0+32]``; of equal ones (+0 and -0) the last, as
    NumPy's ``min``/``max`` reductions give them (C's ``v < min`` keeps the first)."""
    lo, hi = np.float32(3.4028234663852886e38), np.float32(-3.4028234663852886e38)
    for j in range(32):
        v = x[i0 + j]
        if v <= lo:
            lo = v
        if v >= hi:
            hi = v
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _inverse(d):
    return np.float32(1.0) / d if d != 0 else np.float32(0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    """Blocks ``b0..b1``; returns (blocks with a NaN, blocks whose scale overflows)."""
    nbytes = block_bytes(kind)
    nan = ovf = 0
    for b in range(b0, b1):
        i0, o = b * 32, b * nbytes
        top, big = _abs_max(x, i0)
        if top > 0x7F800000:
            nan += 1
        if kind == 0:  # q8_0
            d = as_float(np.uint32(top)) / np.float32(127.0)
            dh = half_bits(d)
            put_half(out, o, dh)
            ident = _inverse(d)
            for j in range(32):
                r = round_away(x[i0 + j] * ident)
                out[o + 2 + j] = to_byte(r)
        elif kind == 1 or kind == 3:  # q4_0, q5_0
            nmax = np.float32(8.0) if kind == 1 else np.float32(16.0)
            cap = 15 if kind == 1 else 31
            d = big / -nmax
            dh = half_bits(d)
            put_half(out, o, dh)
            ident = _inverse(d)
            half = nmax + np.float32(0.5)
            q0 = o + (2 if kind == 1 else 6)
            qh = np.uint32(0)
            for j in range(16):
                lo = min(cap, to_byte(np.trunc(x[i0 + j] * ident + half)))
                hi = min(cap, to_byte(np.trunc(x[i0 + 16 + j] * ident + half)))
                out[q0 + j] = (lo & 0xF) | ((hi & 0xF) << 4)
                qh |= np.uint32(((lo >> 4) << j) | ((hi >> 4) << (j + 16)))
            if kind == 3:
                for k in range(4):
                    out[o + 2 + k] = (qh >> (8 * k)) & 0xFF
        else:  # q4_1, q5_1
            lo_v, hi_v = _min_max(x, i0)
            cap = 15 if kind == 2 else 31
            d = (hi_v - lo_v) / np.float32(cap)
            dh, mh = half_bits(d), half_bits(lo_v)
            if (mh & 0x7FFF) == 0x7C00 and top <= 0x7F800000:
                dh = 0x7C00  # the minimum overflows: counted below
            put_half(out, o, half_bits(d))
            put_half(out, o + 2, mh)
            ident = _inverse(d)
            q0 = o + (4 if kind == 2 else 8)
            qh = np.uint32(0)
            for j in range(16):
                lo = min(cap, to_byte(np.trunc((x[i0 + j] - lo_v) * ident + np.float32(0.5))))
                hi = min(cap, to_byte(np.trunc((x[i0 + 16 + j] - lo_v) * ident
                                               + np.float32(0.5))))
                out[q0 + j] = (lo & 0xF) | ((hi & 0xF) << 4)
                qh |= np.uint32(((lo >> 4) << j) | ((hi >> 4) << (j + 16)))
            if kind == 4:
                for k in range(4):
                    out[o + 4 + k] = (qh >> (8 * k)) & 0xFF
        if (dh & 0x7FFF) == 0x7C00 and top <= 0x7F800000:
            ovf += 1
    return nan, ovf


@njit(parallel=True, cache=True, nogil=True)
def _quantize_parallel(x, kind, out, nchunks):
    nb = x.size // 32
    nan = ovf = 0
    for c in prange(nchunks):
        a, b = _quantize_blocks(x, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)
        nan += a
        ovf += b
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy")
def _dequantize_blocks(data, kind, b0, b1, out):
    nbytes = block_bytes(kind)
    for b in range(b0, b1):
        i0, o = b * 32, b * nbytes
        d = get_half(data, o)
        if kind == 0:
            for j in range(32):
                out[i0 + j] = np.float32(np.int8(data[o + 2 + j])) * d
            continue
        m = get_half(data, o + 2) if kind == 2 or kind == 4 else np.float32(0.0)
        qh = np.int64(0)
        if kind >= 3:
            h0 = o + (2 if kind == 3 else 4)
            for k in range(4):
                qh |= np.int64(data[h0 + k]) << (8 * k)
        q0 = o + block_bytes(kind) - 16
        for j in range(16):
            byte = np.int64(data[q0 + j])
            lo = (byte & 0xF) | (((qh >> j) & 1) << 4)
            hi = (byte >> 4) | (((qh >> (j + 16)) & 1) << 4)
            if kind == 1 or kind == 3:
                off = 8 if kind == 1 else 16
                out[i0 + j] = d * np.float32(lo - off)
                out[i0 + 16 + j] = d * np.float32(hi - off)
            else:
                out[i0 + j] = d * np.float32(lo) + m
                out[i0 + 16 + j] = d * np.float32(hi) + m


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(data, kind, out, nchunks):
    nb = out.size // 32
    for c in prange(nchunks):
        _dequantize_blocks(data, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)


@njit(cache=True, nogil=True)
def codes(data, kind, out):
    """Each element's stored code into ``out`` (uint8, whole blocks of 32)."""
    nbytes = block_bytes(kind)
    for b in range(out.size // 32):
        i0, o = b * 32, b * nbytes
        if kind == 0:
            for j in range(32):
                out[i0 + j] = data[o + 2 + j]
            continue
        qh = np.int64(0)
        if kind >= 3:
            h0 = o + (2 if kind == 3 else 4)
            for k in range(4):
                qh |= np.int64(data[h0 + k]) << (8 * k)
        q0 = o + nbytes - 16
        for j in range(16):
            byte = np.int64(data[q0 + j])
            out[i0 + j] = (byte & 0xF) | (((qh >> j) & 1) << 4)
            out[i0 + 16 + j] = (byte >> 4) | (((qh >> (j + 16)) & 1) << 4)


def _chunks(nblocks):
    return n_chunks(nblocks * BLOCK) if nblocks * BLOCK >= (1 << 16) else 1


def quantize(x, kind, out):
    nb = x.size // BLOCK
    nchunks = _chunks(nb)
    if nchunks == 1:
        return _quantize_blocks(x, kind, 0, nb, out)
    with parallel_region():
        return _quantize_parallel(x, kind, out, nchunks)


def dequantize(data, kind, out):
    nb = out.size // BLOCK
    nchunks = _chunks(nb)
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks)
