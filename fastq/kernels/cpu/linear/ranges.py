"""Per-block value ranges for linear quantization (CPU): ``minmax`` of ``fastq.kernels.cpu.quant``.

``minmax(x3, blocks, out_min, out_max) -> (has_nan, has_inf)``: per block of the float32
view ``x3`` of shape ``(P, K, Q)`` with ``blocks = (bp, bk, bq)``, the min and max of the
finite values and 0 (every range contains 0), into float32 arrays of the grid shape
``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))``.

Float min/max reductions do not vectorize; integer ones do, and two of them over the raw
bits give a range that contains 0.  As int32, the bits of non-negative floats order as
the floats do, and negative floats lie below all of them: the signed maximum is the bits
of the largest non-negative value, if any (then ``max(x, 0)``; else 0).  As uint32, the
bits of negative floats lie above all others and order by magnitude: the unsigned
maximum is the bits of the most negative value, if any (then ``min(x, 0)``; else 0).
NaN and ±inf show up as maxima at or beyond the bits of ±inf (a NaN's sign bit picks
which), and only then an exact float pass over the finite values runs.

Work items are runs of rows: per tensor, chunks of the flat array; a group per row
(``PerGroup`` on the last axis), runs of groups; otherwise (split, block row, k-block)
items, where blocks of many rows (a range per column) are split into partial ranges so
that they too spread over the threads.
"""
import numpy as np
from numba import njit, prange

from ....runtime.threads import parallel_region, region_threads
from ....core.flags import INF, NAN
from ..parallel import AHEAD, BLOCK, SERIAL_BELOW
from ..word import FP_NEAREST_EVEN, as_float, prefetch_span, swap_fp_control, unmanaged

POS_INF = 0x7F800000  # the bits of +inf (signed maximum); NaNs lie above
NEG_INF = 0xFF800000  # the bits of -inf (unsigned maximum); NaNs lie above
NO_SIGNED = -(1 << 31)  # start of a signed maximum (the bits of -0.0, below any other)
# Reductions go in pieces of REDUCE_PIECE elements: each piece ends in a horizontal step
# (vector lanes to one value), which long pieces pay rarely enough to hide.
REDUCE_PIECE = 8 * BLOCK


@njit(cache=True, nogil=True)
def _max_items(u3, bp, bk, bq, w0, w1, umax, smax):
    """Unsigned and signed maxima of the bits of work items ``w0..w1``; item
    ``w = (split, pb, kb)`` is part ``split`` of the rows of block ``(pb, kb)``, into
    ``umax[split, pb, kb]`` and ``smax[split, pb, kb]``.

    Rows go in pieces of at most ``REDUCE_PIECE`` elements, prefetched ``AHEAD``
    elements ahead in the flat array (rows and groups may be short)."""
    u3, umax, smax = unmanaged(u3), unmanaged(umax), unmanaged(smax)
    nsplit, Pb, Kb = umax.shape[0], umax.shape[1], umax.shape[2]
    P, K, Q = u3.shape
    flat = u3.reshape(u3.size)
    step = min(bq, REDUCE_PIECE)
    sp, pb, kb = w0 // (Pb * Kb), w0 // Kb % Pb, w0 % Kb
    for _ in range(w0, w1):  # (counters, not divisions: items can be a few dozen bytes)
        k0, k1 = kb * bk, min(kb * bk + bk, K)
        if nsplit > 1:
            k0, k1 = kb * bk + sp * bk // nsplit, min(kb * bk + (sp + 1) * bk // nsplit, K)
        ublock, sblock = umax[sp, pb, kb], smax[sp, pb, kb]
        for p in range(pb * bp, min(pb * bp + bp, P)):
            if bq == 1:  # one range per column
                column_max(u3[p], k0, k1, ublock, sblock)
                continue
            for k in range(k0, k1):
                row, off = u3[p, k], (p * K + k) * Q
                for g in range(ublock.size):
                    seg = row[g * bq:g * bq + bq]
                    um, sm = ublock[g], sblock[g]
                    for start in range(0, seg.size, step):
                        prefetch_span(flat, off + g * bq + start + AHEAD, step)
                        um, sm = _span_max(seg[start:start + step], um, sm)
                    ublock[g], sblock[g] = um, sm
        kb += 1
        if kb == Kb:
            kb, pb = 0, pb + 1
            if pb == Pb:
                pb, sp = 0, sp + 1


@njit(cache=True, nogil=True, inline="always")
def _span_max(us, um, sm):
    """``um, sm`` raised to the unsigned and signed maxima of the bits ``us``."""
    for j in range(us.size):
        um = max(um, us[j])
        sm = max(sm, np.int32(us[j]))
    return um, sm


@njit(cache=True, nogil=True, inline="always")
def column_max(rows, k0, k1, ublock, sblock):
    """Raise the per-column maxima ``ublock``, ``sblock`` over rows ``k0..k1`` of
    ``rows``, four rows at a time: the accumulators are loaded and stored once per four
    rows, not once per row (2.5x fewer memory operations; elementwise, it vectorizes)."""
    k = k0
    while k + 4 <= k1:
        a, b, c, d = rows[k], rows[k + 1], rows[k + 2], rows[k + 3]
        for j in range(a.size):
            ua, ub, uc, ud = a[j], b[j], c[j], d[j]
            ublock[j] = max(ublock[j], max(max(ua, ub), max(uc, ud)))
            sblock[j] = max(sblock[j], max(max(np.int32(ua), np.int32(ub)),
                                           max(np.int32(uc), np.int32(ud))))
        k += 4
    for k in range(k, k1):
        a = rows[k]
        for j in range(a.size):
            ublock[j] = max(ublock[j], a[j])
            sblock[j] = max(sblock[j], np.int32(a[j]))


@njit(cache=True, nogil=True, inline="always")
def row_range(row, ignore):
    """``(flags, lo, hi)`` of one contiguous float32 row: ``min(x, 0)`` and ``max(x, 0)``
    over its finite values; flags ``NAN``: a NaN met, ``INF``: an inf met (then the range comes from
    an exact pass over the finite values, which runs only with ``ignore``)."""
    u = row.view(np.uint32)
    um, sm = np.uint32(0), np.int32(NO_SIGNED)
    for start in range(0, u.size, REDUCE_PIECE):
        um, sm = _span_max(u[start:start + REDUCE_PIECE], um, sm)
    flags, lo, hi = maxima_range(um, sm)
    if flags and ignore:
        lo, hi = finite_range(row)
    return flags, lo, hi


@njit(cache=True, nogil=True, inline="always")
def maxima_range(um, sm):
    """``(flags, lo, hi)`` from the unsigned and signed maxima of some float32 bits:
    ``min(x, 0)``, ``max(x, 0)``; flags ``NAN``: a NaN among them, ``INF``: an inf (lo, hi
    then 0: see ``finite_range``)."""
    # (no short-circuit "or" here: its branches stop LLVM vectorizing a loop before it)
    flags = NAN * np.int64((sm > POS_INF) | (um > NEG_INF)) | INF * np.int64(
        (sm == POS_INF) | (um == NEG_INF))
    lo, hi = np.float32(0), np.float32(0)
    if flags == 0:
        lo, hi = min(as_float(um), lo), max(as_float(np.uint32(sm)), hi)
    return flags, lo, hi


@njit(cache=True, nogil=True, inline="always")
def finite_range(values):
    """``min(x, 0)`` and ``max(x, 0)`` over the finite values of a 1-D array, exactly
    (the slow path, for ranges that hold a NaN or an inf)."""
    lo, hi = np.float32(0), np.float32(0)
    for v in values:
        if v - v == 0:
            lo, hi = min(lo, v), max(hi, v)
    return lo, hi


@njit(cache=True, nogil=True)
def max_groups(u, G, g0, g1, umax, smax):
    """Maxima of the groups ``g0..g1`` of ``G`` consecutive elements of the flat ``u``
    (a view whose every row is one group: blocks ``(1, 1, Q)``; per tensor, one group)."""
    u, umax, smax = unmanaged(u), unmanaged(umax), unmanaged(smax)
    step = min(G, REDUCE_PIECE)
    for g in range(g0, g1):
        um, sm = np.uint32(0), np.int32(NO_SIGNED)
        end = min(g * G + G, u.size)
        for start in range(g * G, end, step):
            prefetch_span(u, start + AHEAD, step)
            um, sm = _span_max(u[start:min(start + step, end)], um, sm)
        umax[g], smax[g] = um, sm


@njit(parallel=True, cache=True, nogil=True)
def _max_groups_parallel(u, G, umax, smax):
    n = umax.size
    nchunks = min(n, 64)
    for c in prange(nchunks):
        max_groups(u, G, c * n // nchunks, (c + 1) * n // nchunks, umax, smax)


@njit(parallel=True, cache=True, nogil=True)
def _max_parallel(u3, bp, bk, bq, umax, smax):
    """The work items of ``_max_items`` in at most 64 runs: ``umax[split]`` are partials,
    so blocks of many rows (a range per column) spread over the threads too."""
    items = umax.shape[0] * umax.shape[1] * umax.shape[2]
    nchunks = min(items, 64)
    for c in prange(nchunks):
        _max_items(u3, bp, bk, bq, c * items // nchunks, (c + 1) * items // nchunks,
                   umax, smax)


@njit(cache=True, nogil=True)
def _finite_rows(x3, bp, bk, bq, out_min, out_max):
    """Exact float min/max of the finite values (slow path: only with NaN/inf present)."""
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (subnormals are not zero)
    for p in range(x3.shape[0]):
        for k in range(x3.shape[1]):
            row = x3[p, k]
            lo, hi = out_min[p // bp, k // bk], out_max[p // bp, k // bk]
            for q in range(row.size):
                v = row[q]
                if (v - v) == 0:
                    lo[q // bq] = min(lo[q // bq], v)
                    hi[q // bq] = max(hi[q // bq], v)
    swap_fp_control(saved)


def minmax(x3, blocks, out_min, out_max):
    """See the module docstring.  Returns ``(has_nan, has_inf)``."""
    bp, bk, bq = blocks
    u3 = x3.view(np.uint32)
    parallel = x3.size >= SERIAL_BELOW
    if out_min.size == 1 or blocks == (1, 1, x3.shape[2]):  # one range, or one per row
        flat = u3.reshape(-1)
        G = x3.shape[2] if out_min.size > 1 else flat.size  # (per tensor: 64 partials)
        G = -(-flat.size // 64) if out_min.size == 1 and parallel else G
        umax = np.empty(-(-flat.size // G), np.uint32)
        smax = np.empty(umax.size, np.int32)
        if parallel:
            with parallel_region():
                _max_groups_parallel(flat, G, umax, smax)
        else:
            max_groups(flat, G, 0, umax.size, umax, smax)
        if out_min.size == 1:
            umax, smax = umax.max(initial=0), smax.max(initial=NO_SIGNED)
    else:
        items = out_min.shape[0] * out_min.shape[1]
        nsplit = 1
        if parallel:  # rows of a block split into partial ranges (under x3.size / 64),
            # a few per thread: more only add partials to combine, and fresh pages of
            # partials to fault in (wide rows make those a large cost)
            nsplit = max(1, min(64 // items, bk, x3.size // (64 * out_min.size),
                                4 * region_threads()))
        umax = np.zeros((nsplit,) + out_min.shape, np.uint32)
        smax = np.full((nsplit,) + out_min.shape, NO_SIGNED, np.int32)
        if parallel:
            with parallel_region():
                _max_parallel(u3, bp, bk, bq, umax, smax)
        else:
            _max_items(u3, bp, bk, bq, 0, items, umax, smax)
        umax, smax = umax.max(axis=0), smax.max(axis=0)
    umax, smax = np.asarray(umax), np.asarray(smax)
    has_nan = bool(smax.max() > POS_INF or umax.max() > NEG_INF)
    has_inf = not has_nan and bool((smax == POS_INF).any() or (umax == NEG_INF).any())
    if has_nan or has_inf:  # (inf may hide behind NaN: both take this path)
        out_min[...] = 0
        out_max[...] = 0
        _finite_rows(x3, bp, bk, bq, out_min, out_max)
    else:
        np.minimum(umax.view(np.float32).reshape(out_min.shape), 0, out=out_min)
        np.maximum(smax.view(np.float32).reshape(out_max.shape), 0, out=out_max)
    return has_nan, has_inf
