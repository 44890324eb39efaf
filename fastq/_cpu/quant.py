"""Linear quantization kernels (CPU) over the canonical blocked view.

Backend interface (the CUDA twin ``fastq/_cuda/quant.py`` keeps these names):

* ``minmax(x3, blocks, out_min, out_max) -> (n_nan, n_inf)``: per block of the float32
  view ``x3`` of shape ``(P, K, Q)`` with ``blocks = (bp, bk, bq)``, the min and max of
  the finite values and 0 (so every range contains 0), into float32 arrays of the grid
  shape ``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))``; non-finite values are counted.
* ``quantize(x3, blocks, scale3, zero3, qmin, qmax, out3)``: ``clip(rint(x / s) + z,
  qmin, qmax)`` with a true float32 division and round-half-even; NaN codes as ``z``.
* ``fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3)``: the same, then
  ``(q - z) * s`` in float32, written as float32 (no code array).
* ``dequantize(codes3, blocks, scale3, zero3, out3)``: ``(q - z) * s`` in float32.

``scale3`` is float32 and ``zero3`` float32 holding integers, both of the grid shape.
Rows ``(p, k)`` are contiguous runs of Q elements; work is split over rows (quantize)
or over block rows (minmax), so the input is read in memory order whatever the axis.
"""
import numpy as np
from numba import njit, prange

from .._threads import parallel_region
from ._parallel import SERIAL_BELOW


@njit(cache=True)
def _minmax_rows(x3, bp, bk, bq, kb0, kb1, pb, out_min, out_max, counts):
    """Min/max of the rows of block-row ``pb`` and k-blocks ``kb0..kb1`` (exclusive)."""
    P, K, Q = x3.shape
    n_nan = 0
    n_inf = 0
    for p in range(pb * bp, min(pb * bp + bp, P)):
        for k in range(kb0 * bk, min(kb1 * bk, K)):
            row = x3[p, k]
            lo, hi = out_min[pb, k // bk], out_max[pb, k // bk]
            for j in range(lo.size):
                seg = row[j * bq:j * bq + bq]
                mn, mx = lo[j], hi[j]
                for v in seg:
                    finite = (v - v) == 0
                    n_nan += v != v
                    n_inf += (not finite) and (v == v)
                    w = v if finite else np.float32(0)
                    mn = min(mn, w)
                    mx = max(mx, w)
                lo[j], hi[j] = mn, mx
    counts[0] += n_nan
    counts[1] += n_inf


@njit(parallel=True, cache=True)
def _minmax_parallel(x3, bp, bk, bq, out_min, out_max, counts):
    Pb, Kb = out_min.shape[0], out_min.shape[1]
    for w in prange(Pb * Kb):
        _minmax_rows(x3, bp, bk, bq, w % Kb, w % Kb + 1, w // Kb, out_min, out_max, counts[w])


@njit(cache=True)
def _minmax_serial(x3, bp, bk, bq, out_min, out_max, counts):
    for pb in range(out_min.shape[0]):
        _minmax_rows(x3, bp, bk, bq, 0, out_min.shape[1], pb, out_min, out_max, counts[0])


@njit(parallel=True, cache=True)
def _minmax_flat(x, nchunks, out_min, out_max, counts):
    """Per-tensor: one partial min/max per chunk of the flat array."""
    n = x.size
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        seg = x[c * step:min(c * step + step, n)].reshape((1, 1, -1))
        _minmax_rows(seg, 1, 1, seg.shape[2], 0, 1, 0, out_min[c:c + 1], out_max[c:c + 1],
                     counts[c])


def minmax(x3, blocks, out_min, out_max):
    """See the module docstring.  Returns ``(n_nan, n_inf)``."""
    bp, bk, bq = blocks
    out_min[...] = 0
    out_max[...] = 0
    work = out_min.shape[0] * out_min.shape[1]
    if x3.size >= SERIAL_BELOW and out_min.size == 1:
        nchunks = 64
        part_min = np.zeros((nchunks, 1, 1), np.float32)
        part_max = np.zeros((nchunks, 1, 1), np.float32)
        counts = np.zeros((nchunks, 2), np.int64)
        with parallel_region():
            _minmax_flat(x3.reshape(-1), nchunks, part_min, part_max, counts)
        out_min[...] = part_min.min()
        out_max[...] = part_max.max()
    elif x3.size >= SERIAL_BELOW and work > 1:
        counts = np.zeros((work, 2), np.int64)
        with parallel_region():
            _minmax_parallel(x3, bp, bk, bq, out_min, out_max, counts)
    else:
        counts = np.zeros((1, 2), np.int64)
        _minmax_serial(x3, bp, bk, bq, out_min, out_max, counts)
    total = counts.sum(axis=0)
    return int(total[0]), int(total[1])


@njit(cache=True)
def _code(v, s, z, qmin, qmax):
    """``clip(rint(v / s) + z, qmin, qmax)`` as float32; NaN gives ``z``."""
    q = np.rint(v / s) + z
    q = min(max(q, qmin), qmax)
    return z if q != q else q


@njit(cache=True)
def _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, r0, r1, out3):
    K = x3.shape[1]
    for r in range(r0, r1):
        p, k = r // K, r % K
        row, out = x3[p, k], out3[p, k]
        srow, zrow = scale3[p // bp, k // bk], zero3[p // bp, k // bk]
        if bq == 1:  # one parameter per column: elementwise, vectorizes
            for j in range(row.size):
                q = _code(row[j], srow[j], zrow[j], qmin, qmax)
                out[j] = (q - zrow[j]) * srow[j] if fake else q
        else:
            for b in range(srow.size):
                s, z = srow[b], zrow[b]
                seg, oseg = row[b * bq:b * bq + bq], out[b * bq:b * bq + bq]
                for j in range(seg.size):
                    q = _code(seg[j], s, z, qmin, qmax)
                    oseg[j] = (q - z) * s if fake else q


@njit(parallel=True, cache=True)
def _quantize_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, out3, nchunks):
    rows = x3.shape[0] * x3.shape[1]
    for c in prange(nchunks):
        _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake,
                       c * rows // nchunks, (c + 1) * rows // nchunks, out3)


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
                for j in range(seg.size):
                    oseg[j] = (np.float32(seg[j]) - z) * s


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


def _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, fake, out3):
    bp, bk, bq = blocks
    qmin, qmax = np.float32(qmin), np.float32(qmax)
    rows, nchunks = _split(x3)
    if nchunks:
        with parallel_region():
            _quantize_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, out3, nchunks)
    elif rows == 1 and x3.size >= SERIAL_BELOW and bq == x3.shape[2]:
        # one long row under one parameter (per-tensor): split it into rows
        n = x3.size
        cut = 1 << 14
        head = n - n % cut
        view = x3.reshape(-1)[:head].reshape(1, head // cut, cut)
        oview = out3.reshape(-1)[:head].reshape(1, head // cut, cut)
        with parallel_region():
            _quantize_parallel(view, 1, head // cut, cut, scale3, zero3, qmin, qmax, fake,
                               oview, 64)
        _quantize_rows(x3.reshape(-1)[head:].reshape(1, 1, -1), 1, 1, n - head, scale3,
                       zero3, qmin, qmax, fake, 0, 1, out3.reshape(-1)[head:].reshape(1, 1, -1))
    else:
        _quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, fake, 0, rows, out3)


def quantize(x3, blocks, scale3, zero3, qmin, qmax, out3):
    """See the module docstring."""
    _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, False, out3)


def fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3):
    """See the module docstring."""
    _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, True, out3)


def dequantize(codes3, blocks, scale3, zero3, out3):
    """See the module docstring."""
    bp, bk, bq = blocks
    rows, nchunks = _split(codes3)
    if nchunks:
        with parallel_region():
            _dequantize_parallel(codes3, bp, bk, bq, scale3, zero3, out3, nchunks)
    else:
        _dequantize_rows(codes3, bp, bk, bq, scale3, zero3, 0, rows, out3)
