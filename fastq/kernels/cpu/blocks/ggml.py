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
from ..word import as_bits, as_float, band, bor, local_block, shl, shr, sub, unmanaged

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
    """NumPy's (x86) float32 -> uint8 of ``trunc(v)``: the low byte of the int32
    conversion (which truncates), 0 where that is undefined (NaN, inf, out of range)."""
    if not (abs(v) < np.float32(2147483648.0)):
        return np.uint8(0)
    return np.uint8(np.int32(v) & np.int32(0xFF))


@njit(cache=True, nogil=True, inline="always")
def round_away_byte(v):
    """The low byte of ``roundf(v)`` (half away from zero, exactly as
    ``gguf.quants.np_roundf``), 0 where the conversion is undefined."""
    a = abs(v)
    if not (a < np.float32(2147483648.0)):
        return np.uint8(0)
    i = np.int32(a)  # trunc = floor for a >= 0; a - i is exact
    i += np.int32(1) if a - np.float32(i) >= np.float32(0.5) else np.int32(0)
    return np.uint8((-i if v < 0 else i) & np.int32(0xFF))


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
    the first element with it (NumPy's ``argmax``; both loops vectorize)."""
    top = np.uint32(0)
    mask = np.uint32(0x7FFFFFFF)
    for j in range(32):  # (band: 32-bit lanes; a plain & widens to 64)
        top = max(top, band(as_bits(x[i0 + j]), mask))
    hits = np.uint32(0)  # bit j: element j has that magnitude
    for j in range(32):
        hit = band(as_bits(x[i0 + j]), mask) == top
        hits = bor(hits, shl(np.uint32(1) if hit else np.uint32(0), np.uint32(j)))
    lowest = hits & (~hits + np.uint32(1))  # its lowest set bit, an exact power of 2
    first = (as_bits(np.float32(lowest)) >> np.uint32(23)) - np.uint32(127)
    return top, x[i0 + (first & np.uint32(31))]


@njit(cache=True, nogil=True, inline="always")
def _min_max(x, i0):
    """``min`` and ``max`` of ``x[i0:i0+32]``; of equal ones (+0 and -0) the last, as
    NumPy's ``min``/``max`` reductions give them (C's ``v < min`` keeps the first)."""
    lo, hi = np.float32(3.4028234663852886e38), np.float32(-3.4028234663852886e38)
    for j in range(32):
        v = x[i0 + j]
        lo = v if v <= lo else lo
        hi = v if v >= hi else hi
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _inverse(d):
    return np.float32(1.0) / d if d != 0 else np.float32(0.0)


@njit(cache=True, nogil=True, inline="always")
def _pack_nibbles(codes, out, q0, qh0, five):
    """Low nibbles of ``codes[j]`` and ``codes[j + 16]`` into byte ``j`` at ``q0``; for
    5-bit codes their fifth bits into the little-endian uint32 at ``qh0``.  (``band``
    etc.: 8/32-bit lanes, where plain operators widen to 64.)"""
    for j in range(16):
        out[q0 + j] = bor(band(codes[j], np.uint8(0xF)), shl(codes[j + 16], np.uint8(4)))
    if five:
        qh = np.uint32(0)
        for j in range(32):
            qh = bor(qh, shl(np.uint32(shr(codes[j], np.uint8(4))), np.uint32(j)))
        for k in range(4):
            out[qh0 + k] = np.uint8(band(shr(qh, np.uint32(8 * k)), np.uint32(0xFF)))


@njit(cache=True, nogil=True, inline="always")
def _flags(top, dh, nan, ovf):
    """The counts after a block: a NaN, else a float16 scale that overflows."""
    if top > 0x7F800000:
        return nan + 1, ovf
    return nan, ovf + ((dh & 0x7FFF) == 0x7C00)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _q8_0_blocks(x, b0, b1, out):
    """q8_0: ``roundf(x / d)``, ``d = amax / 127``."""
    nan = ovf = 0
    for b in range(b0, b1):
        i0, o = b * 32, b * 34
        top, big = _abs_max(x, i0)
        d = as_float(top) / np.float32(127.0)
        dh = half_bits(d)
        put_half(out, o, dh)
        ident = _inverse(d)
        for j in range(32):
            out[o + 2 + j] = round_away_byte(x[i0 + j] * ident)
        nan, ovf = _flags(top, dh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _x_0_blocks(x, b0, b1, out, codes, five):
    """q4_0 (q5_0 when ``five``): ``trunc(x / d + 8.5)`` (16.5), ``d = max / -8`` (-16)."""
    nmax = np.float32(16.0) if five else np.float32(8.0)
    cap = np.uint8(31) if five else np.uint8(15)
    nbytes = 22 if five else 18
    half = nmax + np.float32(0.5)
    nan = ovf = 0
    for b in range(b0, b1):
        i0, o = b * 32, b * nbytes
        top, big = _abs_max(x, i0)
        d = big / -nmax
        dh = half_bits(d)
        put_half(out, o, dh)
        ident = _inverse(d)
        for j in range(32):
            codes[j] = min(cap, to_byte(x[i0 + j] * ident + half))
        _pack_nibbles(codes, out, o + (6 if five else 2), o + 2, five)
        nan, ovf = _flags(top, dh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _x_1_blocks(x, b0, b1, out, codes, five):
    """q4_1 (q5_1 when ``five``): ``trunc((x - min) / d + 0.5)``, ``d = (max - min) / 15``
    (31); a float16 minimum that overflows counts as an overflowing scale."""
    cap = np.uint8(31) if five else np.uint8(15)
    nbytes = 24 if five else 20
    nan = ovf = 0
    for b in range(b0, b1):
        i0, o = b * 32, b * nbytes
        top = np.uint32(0)
        for j in range(32):
            top = max(top, band(as_bits(x[i0 + j]), np.uint32(0x7FFFFFFF)))
        lo, hi = _min_max(x, i0)
        d = (hi - lo) / np.float32(cap)
        dh, mh = half_bits(d), half_bits(lo)
        put_half(out, o, dh)
        put_half(out, o + 2, mh)
        ident = _inverse(d)
        for j in range(32):
            codes[j] = min(cap, to_byte((x[i0 + j] - lo) * ident + np.float32(0.5)))
        _pack_nibbles(codes, out, o + (8 if five else 4), o + 4, five)
        nan, ovf = _flags(top, dh if (mh & 0x7FFF) != 0x7C00 else mh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    """Blocks ``b0..b1``; returns (blocks with a NaN, blocks whose scale overflows).
    Each format has its own block loop, its constants inlined."""
    x, out = unmanaged(x), unmanaged(out)  # (no reference counting per helper call)
    codes = local_block(out, 32)
    if kind == 0:
        return _q8_0_blocks(x, b0, b1, out)
    if kind == 1:
        return _x_0_blocks(x, b0, b1, out, codes, False)
    if kind == 3:
        return _x_0_blocks(x, b0, b1, out, codes, True)
    if kind == 2:
        return _x_1_blocks(x, b0, b1, out, codes, False)
    return _x_1_blocks(x, b0, b1, out, codes, True)


@njit(parallel=True, cache=True, nogil=True)
def _quantize_parallel(x, kind, out, nchunks):
    nb = x.size // 32
    nan = ovf = 0
    for c in prange(nchunks):
        a, b = _quantize_blocks(x, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)
        nan += a
        ovf += b
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _x_dequantize_blocks(data, b0, b1, out, nbytes, offset, with_min, five):
    """q4_0/q5_0 ``d * (q - offset)``; q4_1/q5_1 ``d * q + m`` (``with_min``)."""
    for b in range(b0, b1):
        i0, o = b * 32, b * nbytes
        d = get_half(data, o)
        m = get_half(data, o + 2) if with_min else np.float32(0.0)
        qh = np.uint32(0)
        if five:
            h0 = o + (4 if with_min else 2)
            for k in range(4):
                qh = bor(qh, shl(np.uint32(data[h0 + k]), np.uint32(8 * k)))
        q0 = o + nbytes - 16
        off = np.int32(offset)
        low, four = np.int32(0xF), np.int32(4)
        for j in range(16):  # (int32 throughout: AVX2 converts int32 lanes, not int64)
            byte = np.int32(data[q0 + j])
            lo = band(byte, low)
            hi = shr(byte, four)
            if five:
                lo = bor(lo, shl(np.int32(band(shr(qh, np.uint32(j)), np.uint32(1))), four))
                hi = bor(hi, shl(np.int32(band(shr(qh, np.uint32(j + 16)), np.uint32(1))),
                                 four))
            if with_min:
                out[i0 + j] = d * np.float32(lo) + m
                out[i0 + 16 + j] = d * np.float32(hi) + m
            else:
                out[i0 + j] = d * np.float32(sub(lo, off))
                out[i0 + 16 + j] = d * np.float32(sub(hi, off))


@njit(cache=True, nogil=True, error_model="numpy")
def _dequantize_blocks(data, kind, b0, b1, out):
    """Blocks ``b0..b1`` to float32 (``gguf.quants``' formulas and order); one block
    loop per format, its constants inlined."""
    data, out = unmanaged(data), unmanaged(out)
    if kind == 0:
        for b in range(b0, b1):
            i0, o = b * 32, b * 34
            d = get_half(data, o)
            for j in range(32):
                out[i0 + j] = np.float32(np.int8(data[o + 2 + j])) * d
    elif kind == 1:
        _x_dequantize_blocks(data, b0, b1, out, 18, 8, False, False)
    elif kind == 2:
        _x_dequantize_blocks(data, b0, b1, out, 20, 0, True, False)
    elif kind == 3:
        _x_dequantize_blocks(data, b0, b1, out, 22, 16, False, True)
    else:
        _x_dequantize_blocks(data, b0, b1, out, 24, 0, True, True)


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
