"""Linear quantization kernels (CPU) over the canonical blocked view.

Backend interface (the CUDA twin ``fastq/_cuda/quant.py`` keeps these names):

* ``minmax(x3, blocks, out_min, out_max) -> (has_nan, has_inf)``: per block of the
  float32 view ``x3`` of shape ``(P, K, Q)`` with ``blocks = (bp, bk, bq)``, the min and
  max of the finite values and 0 (every range contains 0), into float32 arrays of the
  grid shape ``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))``.  It reduces order-preserving
  uint32 keys of the bits (float min/max do not vectorize); NaN and ±inf show up as keys
  at or beyond those of ±inf, and only then an exact float pass over finite values runs.
* ``quantize(x3, blocks, scale3, zero3, qmin, qmax, bits, out) -> has_nan``:
  ``clip(rint(x / s) + z, qmin, qmax)`` with a true float32 division and round-half-even;
  NaN codes as ``z``.  ``out`` is the codes ``(P, K, Q)`` for 8/16 bits, or for 4/2 bits
  the packed bytes (1-D, ``ceil(n * bits / 8)``, ``fastq._cpu.pack`` layout), packed in
  the same pass from a block of codes still in cache.
* ``fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3) -> has_nan``: the same, then
  ``(q - z) * s`` in float32, written as float32 (no code array).
* ``dequantize(codes3, blocks, scale3, zero3, out3)``: ``(q - z) * s`` in float32.

``scale3`` is float32 and ``zero3`` float32 holding integers, both of the grid shape.
Rows ``(p, k)`` are contiguous runs of Q elements; work is split over rows (quantize)
or over block rows (minmax), so the input is read in memory order whatever the axis.
"""
import math

import numpy as np
from numba import njit, prange

from .._threads import parallel_region
from ._parallel import BLOCK, SERIAL_BELOW
from ._word import bor, bxor, prefetch_ahead, shr, sub
from .pack import pack_at


KEY_POS_INF = np.uint32(0xFF800000)  # order key of +inf; NaN keys lie beyond ±inf's
KEY_NEG_INF = np.uint32(0x007FFFFF)


@njit(cache=True)
def _key(u):
    """Order-preserving uint32 key of float32 bits: key(a) < key(b) iff a < b."""
    return bxor(u, bor(sub(np.uint32(0), shr(u, np.uint32(31))), np.uint32(0x80000000)))


@njit(cache=True)
def _key_rows(u3, bp, bk, bq, pb, kb0, kb1, kmin, kmax):
    """Key min/max over the rows of block-row ``pb`` and k-blocks ``kb0..kb1``."""
    P, K, Q = u3.shape
    for p in range(pb * bp, min(pb * bp + bp, P)):
        for k in range(kb0 * bk, min(kb1 * bk, K)):
            row = u3[p, k]
            lo, hi = kmin[pb, k // bk], kmax[pb, k // bk]
            if bq == 1:  # one range per column: elementwise, vectorizes
                for j in range(row.size):
                    key = _key(row[j])
                    lo[j] = min(lo[j], key)
                    hi[j] = max(hi[j], key)
                continue
            for j in range(lo.size):
                seg = row[j * bq:j * bq + bq]
                mn, mx = lo[j], hi[j]
                for i in range(seg.size):
                    key = _key(seg[i])
                    mn = min(mn, key)
                    mx = max(mx, key)
                lo[j], hi[j] = mn, mx


@njit(parallel=True, cache=True)
def _key_parallel(u3, bp, bk, bq, kmin, kmax):
    Pb, Kb = kmin.shape[0], kmin.shape[1]
    for w in prange(Pb * Kb):
        _key_rows(u3, bp, bk, bq, w // Kb, w % Kb, w % Kb + 1, kmin, kmax)


@njit(parallel=True, cache=True)
def _key_flat(u, nchunks, kmin, kmax):
    """Per-tensor: one partial key min/max per chunk of the flat array."""
    step = (u.size + nchunks - 1) // nchunks
    for c in prange(nchunks):
        seg = u[c * step:min(c * step + step, u.size)].reshape((1, 1, -1))
        _key_rows(seg, 1, 1, max(seg.size, 1), 0, 0, 1, kmin[c:c + 1], kmax[c:c + 1])


@njit(cache=True)
def _finite_rows(x3, bp, bk, bq, out_min, out_max):
    """Exact float min/max of the finite values (slow path: only with NaN/inf present)."""
    for p in range(x3.shape[0]):
        for k in range(x3.shape[1]):
            row = x3[p, k]
            lo, hi = out_min[p // bp, k // bk], out_max[p // bp, k // bk]
            for q in range(row.size):
                v = row[q]
                if (v - v) == 0:
                    lo[q // bq] = min(lo[q // bq], v)
                    hi[q // bq] = max(hi[q // bq], v)


def _from_key(key):
    key = np.asarray(key, np.uint32)
    bits = np.where(key & np.uint32(0x80000000), key ^ np.uint32(0x80000000), ~key)
    return bits.astype(np.uint32).view(np.float32)


def minmax(x3, blocks, out_min, out_max):
    """See the module docstring.  Returns ``(has_nan, has_inf)``."""
    bp, bk, bq = blocks
    u3 = x3.view(np.uint32)
    if x3.size >= SERIAL_BELOW and out_min.size == 1:
        nchunks = 64
        kmin = np.full((nchunks, 1, 1), 0xFFFFFFFF, np.uint32)
        kmax = np.zeros((nchunks, 1, 1), np.uint32)
        with parallel_region():
            _key_flat(u3.reshape(-1), nchunks, kmin, kmax)
        kmin, kmax = kmin.min(axis=0, keepdims=True), kmax.max(axis=0, keepdims=True)
    else:
        kmin = np.full(out_min.shape, 0xFFFFFFFF, np.uint32)
        kmax = np.zeros(out_min.shape, np.uint32)
        if x3.size >= SERIAL_BELOW and out_min.shape[0] * out_min.shape[1] > 1:
            with parallel_region():
                _key_parallel(u3, bp, bk, bq, kmin, kmax)
        else:
            for pb in range(out_min.shape[0]):
                _key_rows(u3, bp, bk, bq, pb, 0, out_min.shape[1], kmin, kmax)
    has_nan = bool((kmax > KEY_POS_INF).any() or (kmin < KEY_NEG_INF).any())
    has_inf = bool((kmax == KEY_POS_INF).any() or (kmin == KEY_NEG_INF).any())
    if has_nan or has_inf:
        out_min[...] = 0
        out_max[...] = 0
        _finite_rows(x3, bp, bk, bq, out_min, out_max)
    else:
        out_min[...] = np.minimum(_from_key(kmin).reshape(out_min.shape), 0)
        out_max[...] = np.maximum(_from_key(kmax).reshape(out_max.shape), 0)
    return has_nan, has_inf


# error_model="numpy": IEEE division (scales are validated > 0); Numba's default checks
# every float division for a zero divisor, which stops a per-column loop vectorizing.
@njit(cache=True, error_model="numpy")
def _code(v, s, z, qmin, qmax):
    """``clip(rint(v / s) + z, qmin, qmax)`` as float32 (true division); NaN gives ``z``."""
    q = np.rint(v / s) + z
    q = qmin if q < qmin else q  # compare-selects vectorize; float min/max do not
    q = qmax if q > qmax else q
    return z if q != q else q


@njit(cache=True, error_model="numpy")
def _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, r0, r1, out3):
    """Quantize rows ``r0..r1`` of the view; returns whether it met a NaN."""
    K = x3.shape[1]
    nan = False
    for r in range(r0, r1):
        p, k = r // K, r % K
        row, out = x3[p, k], out3[p, k]
        srow, zrow = scale3[p // bp, k // bk], zero3[p // bp, k // bk]
        if bq == 1:  # one parameter per column: elementwise, vectorizes
            for j in range(row.size):
                nan |= row[j] != row[j]
                q = _code(row[j], srow[j], zrow[j], qmin, qmax)
                if fake:
                    out[j] = (q - zrow[j]) * srow[j]
                else:
                    out[j] = np.int32(q)  # (a direct float -> int8 store is 15% slower)
            continue
        for b in range(srow.size):
            s, z = srow[b], zrow[b]
            seg, oseg = row[b * bq:b * bq + bq], out[b * bq:b * bq + bq]
            for start in range(0, seg.size, BLOCK):
                prefetch_ahead(seg, start, BLOCK)
                xs, os_ = seg[start:start + BLOCK], oseg[start:start + BLOCK]
                for j in range(xs.size):
                    nan |= xs[j] != xs[j]
                    q = _code(xs[j], s, z, qmin, qmax)
                    if fake:
                        os_[j] = (q - z) * s
                    else:
                        os_[j] = np.int32(q)
    return nan


@njit(cache=True, error_model="numpy")
def _quantize_packed_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, bits, base, r0, r1,
                          scratch, out):
    """``_quantize_rows`` for 4/2-bit codes: each block of at most ``BLOCK`` codes goes
    through ``scratch`` (in cache) into the packed bytes ``out``, whose flat index of
    ``x3[0, 0, 0]`` is ``base``.  Rows ``r0..r1`` must start on a byte boundary."""
    K, Q = x3.shape[1], x3.shape[2]
    nan = False
    for r in range(r0, r1):
        p, k = r // K, r % K
        row = x3[p, k]
        srow, zrow = scale3[p // bp, k // bk], zero3[p // bp, k // bk]
        step = BLOCK if bq == 1 else min(bq, BLOCK)
        for b in range(srow.size if bq > 1 else 1):
            seg = row[b * bq:b * bq + bq] if bq > 1 else row
            for start in range(0, seg.size, step):
                xs = seg[start:start + step]
                cs = scratch[:xs.size]
                if bq == 1:  # one parameter per column
                    ss, zs = srow[start:start + step], zrow[start:start + step]
                    for j in range(xs.size):
                        nan |= xs[j] != xs[j]
                        cs[j] = np.int32(_code(xs[j], ss[j], zs[j], qmin, qmax))
                else:
                    s, z = srow[b], zrow[b]
                    for j in range(xs.size):
                        nan |= xs[j] != xs[j]
                        cs[j] = np.int32(_code(xs[j], s, z, qmin, qmax))
                pack_at(cs, base + r * Q + b * bq + start, bits, out)
    return nan


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_packed_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, bits, base, align,
                              scratch, out):
    """Chunks of rows whose first row starts on a byte boundary (a multiple of ``align``)."""
    rows, nchunks = x3.shape[0] * x3.shape[1], scratch.shape[0]
    nan = np.zeros(nchunks, np.bool_)
    for c in prange(nchunks):
        r0 = c * rows // nchunks // align * align
        r1 = rows if c == nchunks - 1 else (c + 1) * rows // nchunks // align * align
        nan[c] = _quantize_packed_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, bits, base,
                                       r0, r1, scratch[c], out)
    return nan.any()


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, out3, nchunks):
    rows = x3.shape[0] * x3.shape[1]
    nan = np.zeros(nchunks, np.bool_)
    for c in prange(nchunks):
        nan[c] = _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake,
                                c * rows // nchunks, (c + 1) * rows // nchunks, out3)
    return nan.any()


@njit(cache=True)
def _dequantize_rows(c3, bp, bk, bq, scale3, zero3, r0, r1, out3):
    K = c3.shape[1]
    for r in range(r0, r1):
        p, k = r // K, r % K
        row, out = c3[p, k], out3[p, k]
        srow, zrow = scale3[p // bp, k // bk], zero3[p // bp, k // bk]
        if bq == 1:
            for j in range(row.size):
                out[j] = (np.float32(row[j]) - zrow[j]) * srow[j]
        else:
            for b in range(srow.size):
                s, z = srow[b], zrow[b]
                seg, oseg = row[b * bq:b * bq + bq], out[b * bq:b * bq + bq]
                for start in range(0, seg.size, BLOCK):
                    prefetch_ahead(seg, start, BLOCK)
                    cs, os_ = seg[start:start + BLOCK], oseg[start:start + BLOCK]
                    for j in range(cs.size):
                        os_[j] = (np.float32(cs[j]) - z) * s


@njit(parallel=True, cache=True)
def _dequantize_parallel(c3, bp, bk, bq, scale3, zero3, out3, nchunks):
    rows = c3.shape[0] * c3.shape[1]
    for c in prange(nchunks):
        _dequantize_rows(c3, bp, bk, bq, scale3, zero3,
                         c * rows // nchunks, (c + 1) * rows // nchunks, out3)


def _split(x3):
    """Rows of a (P, K, Q) view, and how many chunks to give ``prange``."""
    rows = x3.shape[0] * x3.shape[1]
    if x3.size < SERIAL_BELOW or rows == 1:
        return rows, 0
    return rows, min(rows, 64)


def _as_rows(a3, blocks):
    """A single long row under one parameter (per-tensor) as ``(1, rows, cut)`` plus tail."""
    n, cut = a3.size, 1 << 14
    head = n - n % cut
    flat = a3.reshape(-1)
    return flat[:head].reshape(1, head // cut, cut), flat[head:].reshape(1, 1, -1), \
        (1, head // cut, cut), (1, 1, max(n - head, 1))


def _long_row(a3, blocks):
    rows = a3.shape[0] * a3.shape[1]
    return rows == 1 and a3.size >= SERIAL_BELOW and blocks[2] == a3.shape[2]


def _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, fake, out3):
    bp, bk, bq = blocks
    qmin, qmax = np.float32(qmin), np.float32(qmax)
    rows, nchunks = _split(x3)
    if _long_row(x3, blocks):
        x_head, x_tail, b_head, b_tail = _as_rows(x3, blocks)
        o_head, o_tail, _, _ = _as_rows(out3, blocks)
        with parallel_region():
            nan = _quantize_parallel(x_head, *b_head, scale3, zero3, qmin, qmax, fake,
                                     o_head, 64)
        return nan | _quantize_rows(x_tail, *b_tail, scale3, zero3, qmin, qmax, fake, 0, 1,
                                    o_tail)
    if nchunks:
        with parallel_region():
            return _quantize_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, out3,
                                      nchunks)
    return _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, 0, rows, out3)


def _quantize_packed(x3, blocks, scale3, zero3, qmin, qmax, bits, out):
    """4/2-bit codes packed in the quantize pass: one scratch block per chunk."""
    qmin, qmax = np.float32(qmin), np.float32(qmax)
    code_dtype = np.int8 if qmin < 0 else np.uint8
    parts = [(x3, blocks, 0)]
    if _long_row(x3, blocks):  # (cut rows are whole bytes: 2**14 codes)
        x_head, x_tail, b_head, b_tail = _as_rows(x3, blocks)
        parts = [(x_head, b_head, 0), (x_tail, b_tail, x_head.size)]
    nan = False
    for x, (bp, bk, bq), base in parts:
        rows, nchunks = _split(x)
        Q, per = x.shape[2], 8 // bits
        if nchunks:
            scratch = np.empty((nchunks, BLOCK), code_dtype)
            with parallel_region():
                nan |= _quantize_packed_parallel(x, bp, bk, bq, scale3, zero3, qmin, qmax,
                                                 bits, base, per // math.gcd(Q, per),
                                                 scratch, out)
        elif x.size:
            nan |= _quantize_packed_rows(x, bp, bk, bq, scale3, zero3, qmin, qmax, bits, base,
                                         0, rows, np.empty(BLOCK, code_dtype), out)
    return nan


def quantize(x3, blocks, scale3, zero3, qmin, qmax, bits, out):
    """See the module docstring.  Returns whether a NaN was met."""
    if bits < 8:
        return bool(_quantize_packed(x3, blocks, scale3, zero3, qmin, qmax, bits, out))
    return bool(_quantize_any(x3, blocks, scale3, zero3, qmin, qmax, False, out))


def fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3):
    """See the module docstring.  Returns whether a NaN was met."""
    return bool(_quantize_any(x3, blocks, scale3, zero3, qmin, qmax, True, out3))


def dequantize(codes3, blocks, scale3, zero3, out3):
    """See the module docstring."""
    bp, bk, bq = blocks
    rows, nchunks = _split(codes3)
    if _long_row(codes3, blocks):
        c_head, c_tail, b_head, b_tail = _as_rows(codes3, blocks)
        o_head, o_tail, _, _ = _as_rows(out3, blocks)
        with parallel_region():
            _dequantize_parallel(c_head, *b_head, scale3, zero3, o_head, 64)
        _dequantize_rows(c_tail, *b_tail, scale3, zero3, 0, 1, o_tail)
    elif nchunks:
        with parallel_region():
            _dequantize_parallel(codes3, bp, bk, bq, scale3, zero3, out3, nchunks)
    else:
        _dequantize_rows(codes3, bp, bk, bq, scale3, zero3, 0, rows, out3)
