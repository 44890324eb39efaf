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

The per-element work of quantize and dequantize runs on explicit 16-lane float32
vectors (``lanes.vec``): a block's halves, elements 0..15 and
16..31 (the low and high nibbles of the same 16 bytes), are one vector each, with the
byte-level loads and stores of ``ggml_lanes`` (``pack_codes``, ``nibble_lanes``,
``fifth_lanes``, ``put``).  Quantize runs in tiles of 16 blocks: the tile's scales
first, a block a lane (``ggml_scales``), then each block's codes.
"""
import numpy as np
from numba import njit, prange

from ....runtime.threads import parallel_region
from ..parallel import n_chunks, streams
from ..word import (as_bits, band, bor, get_half, half_bits, local_block, put_half, shl,
                    shr, store_fence, unmanaged)
from . import lanes as V
from .ggml_lanes import (fifth_lanes, int8_lanes, nibble_lanes, pack_codes, put, round_away,
                         truncatable)
from .ggml_scales import TILE, abs_top_scales, min_max_scales, signed_max_scales

BLOCK = 32  # elements of a block (GGML's QK4_0 etc.; the kernels spell it out)
# Elements from which a pass runs on the thread pool: a legacy block costs a few ns per
# element, so a parallel region pays off only on about 4 MB of float32 and more (on a
# loaded 2-core VM, waking the pool took milliseconds).
PARALLEL_FROM = 1 << 20


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of one block: q8_0 34, q4_0 18, q4_1 20, q5_0 22, q5_1 24."""
    return 34 if kind == 0 else 18 + 2 * (kind - 1)


# The block loops take the block width as an argument and slice each block once: see
# docs/design.md ("Legacy formats") for why (loops of a constant 32 trips and indexing
# with Numba's negative-index wrap-around both kept LLVM from vectorizing them).
# Each format's loop runs in tiles of TILE blocks: the tile's scales (``ggml_scales``)
# before its codes.
INF_BITS = np.uint32(0x7F800000)


@njit(cache=True, nogil=True, inline="always")
def _flags(top, dh, nan, ovf):
    """The counts after a block: a NaN, else a float16 scale that overflows."""
    if top > 0x7F800000:
        return nan + 1, ovf
    return nan, ovf + ((dh & 0x7FFF) == 0x7C00)


@njit(cache=True, nogil=True, inline="always")
def _put_u32(ob, o, v):
    for k in range(4):
        ob[o + k] = np.uint8(band(shr(v, np.uint32(8 * k)), np.uint32(0xFF)))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _q8_0_blocks(x, b0, b1, out, width):
    """q8_0: ``roundf(x / d)``, ``d = amax / 127``."""
    nan = ovf = 0
    nbytes = width + 2
    tops, ds, ids = local_block(x, TILE), local_block(x, TILE), local_block(x, TILE)
    for t in range(b0, b1, TILE):
        nt = min(TILE, b1 - t)
        abs_top_scales(x, t, nt, width, tops, ds, ids)
        for g in range(nt):  # (its codes)
            b = t + g
            xb, ob = x[b * width:(b + 1) * width], out[b * nbytes:(b + 1) * nbytes]
            dh = half_bits(ds[g])
            put_half(ob, 0, dh)
            vi = V.splat(ids[g])
            v0, v1 = V.mul(V.load(xb, 0), vi), V.mul(V.load(xb, 16), vi)
            # (finite elements and 1 / d: every |x / d| <= 127, all lanes convert)
            if not (as_bits(tops[g]) < INF_BITS and abs(ids[g]) < np.float32(np.inf)):
                v0, v1 = truncatable(v0), truncatable(v1)
            V.store_bytes(ob, 2, round_away(v0))
            V.store_bytes(ob, 18, round_away(v1))
            nan, ovf = _flags(as_bits(tops[g]), dh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _x_0_blocks(x, b0, b1, out, width, five):
    """q4_0 (q5_0 when ``five``): ``trunc(x / d + 8.5)`` (16.5), ``d = max / -8`` (-16)."""
    nmax = np.float32(16.0) if five else np.float32(8.0)
    cap = np.int32(31) if five else np.int32(15)
    half = width // 2
    nbytes = half + (6 if five else 2)
    q0 = 6 if five else 2
    bias = nmax + np.float32(0.5)
    step = np.float32(-1.0) / nmax
    nan = ovf = 0
    tops, ds, ids = local_block(x, TILE), local_block(x, TILE), local_block(x, TILE)
    for t in range(b0, b1, TILE):
        nt = min(TILE, b1 - t)
        signed_max_scales(x, t, nt, width, step, tops, ds, ids)
        for g in range(nt):  # (its codes; 16-lane vectors: the block's halves)
            b = t + g
            xb, ob = x[b * width:(b + 1) * width], out[b * nbytes:(b + 1) * nbytes]
            dh = half_bits(ds[g])
            put_half(ob, 0, dh)
            vi, vb = V.splat(ids[g]), V.splat(bias)
            flo = V.add(V.mul(V.load(xb, 0), vi), vb)
            fhi = V.add(V.mul(V.load(xb, half), vi), vb)
            # (finite elements and 1 / d: every |x / d| <= nmax, all lanes convert)
            if not (as_bits(tops[g]) < INF_BITS and abs(ids[g]) < np.float32(np.inf)):
                flo, fhi = truncatable(flo), truncatable(fhi)
            qh = pack_codes(ob, q0, flo, fhi, cap)
            if five:
                _put_u32(ob, 2, qh)
            nan, ovf = _flags(as_bits(tops[g]), dh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _x_1_blocks(x, b0, b1, out, width, five):
    """q4_1 (q5_1 when ``five``): ``trunc((x - min) / d + 0.5)``, ``d = (max - min) / 15``
    (31); a float16 minimum that overflows counts as an overflowing scale."""
    cap = np.int32(31) if five else np.int32(15)
    half = width // 2
    nbytes = half + (8 if five else 4)
    q0 = 8 if five else 4
    nan = ovf = 0
    los, ds, ids = local_block(x, TILE), local_block(x, TILE), local_block(x, TILE)
    nans = local_block(x, TILE)
    for t in range(b0, b1, TILE):
        nt = min(TILE, b1 - t)
        min_max_scales(x, t, nt, width, np.float32(cap), los, ds, ids, nans)
        for g in range(nt):
            b = t + g
            xb, ob = x[b * width:(b + 1) * width], out[b * nbytes:(b + 1) * nbytes]
            lo, d, ident, has_nan = los[g], ds[g], ids[g], nans[g] != 0
            top = np.uint32(0x7FC00000) if has_nan else np.uint32(0)  # (for ``_flags``)
            dh, mh = half_bits(d), half_bits(lo)
            put_half(ob, 0, dh)
            put_half(ob, 2, mh)
            vl, vi, vh = V.splat(lo), V.splat(ident), V.splat(np.float32(0.5))
            flo = V.add(V.mul(V.sub(V.load(xb, 0), vl), vi), vh)
            fhi = V.add(V.mul(V.sub(V.load(xb, half), vl), vi), vh)
            # (no NaN, finite d and 1 / d: every (x - min) / d <= cap, all lanes convert)
            if has_nan or not (abs(d) < np.float32(np.inf)
                               and abs(ident) < np.float32(np.inf)):
                flo, fhi = truncatable(flo), truncatable(fhi)
            qh = pack_codes(ob, q0, flo, fhi, cap)
            if five:
                _put_u32(ob, 4, qh)
            nan, ovf = _flags(top, dh if (mh & 0x7FFF) != 0x7C00 else mh, nan, ovf)
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out, width):
    """Blocks ``b0..b1`` of ``width`` (32) elements; returns (blocks with a NaN, blocks
    whose scale overflows).  Each format has its own block loop, its constants inlined."""
    x, out = unmanaged(x), unmanaged(out)  # (no reference counting per block slice)
    if kind == 0:
        return _q8_0_blocks(x, b0, b1, out, width)
    if kind == 1:
        return _x_0_blocks(x, b0, b1, out, width, False)
    if kind == 3:
        return _x_0_blocks(x, b0, b1, out, width, True)
    if kind == 2:
        return _x_1_blocks(x, b0, b1, out, width, False)
    return _x_1_blocks(x, b0, b1, out, width, True)


@njit(parallel=True, cache=True, nogil=True)
def _quantize_parallel(x, kind, out, nchunks, width):
    nb = x.size // width
    nan = ovf = 0
    for c in prange(nchunks):
        a, b = _quantize_blocks(x, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out,
                                width)
        nan += a
        ovf += b
    return nan, ovf


@njit(cache=True, nogil=True, inline="always")
def _vector_block(data, o, kind, dst, y, stream):
    """The block at byte ``o`` of ``data`` into ``dst[y:y + 32]``, 16 lanes a vector (a
    byte's low nibbles are elements 0..15, its high ones 16..31, q5's fifth bits bit
    ``j`` of ``qh`` for element ``j``): q8_0 ``q * d``; q4_0/q5_0 ``d * (q - 8)``
    (``q - 16``); q4_1/q5_1 ``d * q + m``; the integer differences exact in float32.
    ``stream``: non-temporal stores (``put``)."""
    d = V.splat(get_half(data, o))
    if kind == 0:
        put(dst, stream, y, V.mul(int8_lanes(data, o + 2, 0, 0), d))
        put(dst, stream, y + 16, V.mul(int8_lanes(data, o + 18, 0, 0), d))
    elif kind == 1:
        put(dst, stream, y, V.mul(d, nibble_lanes(data, o + 2, 0, 8)))
        put(dst, stream, y + 16, V.mul(d, nibble_lanes(data, o + 2, 4, 8)))
    elif kind == 2:
        m = V.splat(get_half(data, o + 2))
        put(dst, stream, y, V.add(V.mul(d, nibble_lanes(data, o + 4, 0, 0)), m))
        put(dst, stream, y + 16, V.add(V.mul(d, nibble_lanes(data, o + 4, 4, 0)), m))
    else:
        h = 2 if kind == 3 else 4  # (qh after d, or after d and m)
        qh = np.uint32(0)
        for k in range(4):
            qh = bor(qh, shl(np.uint32(data[o + h + k]), np.uint32(8 * k)))
        lo = V.add(nibble_lanes(data, o + h + 4, 0, 0), fifth_lanes(qh, 0))
        hi = V.add(nibble_lanes(data, o + h + 4, 4, 0), fifth_lanes(qh, 16))
        if kind == 3:
            off = V.splat(np.float32(16.0))
            put(dst, stream, y, V.mul(d, V.sub(lo, off)))
            put(dst, stream, y + 16, V.mul(d, V.sub(hi, off)))
        else:
            m = V.splat(get_half(data, o + 2))
            put(dst, stream, y, V.add(V.mul(d, lo), m))
            put(dst, stream, y + 16, V.add(V.mul(d, hi), m))


@njit(cache=True, nogil=True, inline="always")
def _vector_blocks(data, b0, b1, out, kind, stream):
    """Blocks ``b0..b1`` (``_vector_block``); with ``stream``, non-temporal stores and a
    fence after them.  (Streaming through a stack buffer and ``stream_out``, as the
    casts do, was a third slower than plain stores here: the copy and the alignment
    fix-up cost more than the reads saved.  The output's 16-byte alignment is enough for
    ``movntps`` of each 16-byte quarter.)"""
    nbytes = block_bytes(kind)
    if stream:
        for b in range(b0, b1):
            _vector_block(data, b * nbytes, kind, out, b * 32, True)
        store_fence()
    else:
        for b in range(b0, b1):
            _vector_block(data, b * nbytes, kind, out, b * 32, False)


@njit(cache=True, nogil=True, error_model="numpy")
def _dequantize_blocks(data, kind, b0, b1, out, width, stream):
    """Blocks ``b0..b1`` to float32 (``gguf.quants``' formulas and order); one block
    loop per format, its constants inlined."""
    data, out = unmanaged(data), unmanaged(out)
    if kind == 0:  # (explicit vectors: no per-block alias checks and trip-count
        _vector_blocks(data, b0, b1, out, 0, stream)  # dispatch of a vectorized loop)
    elif kind == 1:
        _vector_blocks(data, b0, b1, out, 1, stream)
    elif kind == 2:
        _vector_blocks(data, b0, b1, out, 2, stream)
    elif kind == 3:
        _vector_blocks(data, b0, b1, out, 3, stream)
    else:
        _vector_blocks(data, b0, b1, out, 4, stream)


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(data, kind, out, nchunks, width, stream):
    nb = out.size // width
    for c in prange(nchunks):
        _dequantize_blocks(data, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out, width,
                           stream)


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


def _chunks(nblocks, parallel_from):
    """Chunks of a pass over ``nblocks`` blocks: 1 (serial) below ``parallel_from``
    elements, whose work is shorter than waking the thread pool can take on a busy
    machine; else ``n_chunks``."""
    n = nblocks * BLOCK
    return n_chunks(n) if n >= parallel_from else 1


def quantize(x, kind, out):
    nb = x.size // BLOCK
    nchunks = _chunks(nb, PARALLEL_FROM)
    if nchunks == 1:
        return _quantize_blocks(x, kind, 0, nb, out, BLOCK)
    with parallel_region():
        return _quantize_parallel(x, kind, out, nchunks, BLOCK)


def dequantize(data, kind, out):
    nb = out.size // BLOCK
    nchunks = _chunks(nb, PARALLEL_FROM)
    # (past the last-level cache, and where the output's alignment allows)
    stream = streams(data, out) and out.ctypes.data % 16 == 0
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out, BLOCK, stream)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks, BLOCK, stream)
