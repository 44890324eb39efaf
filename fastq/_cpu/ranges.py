"""Per-block value ranges for linear quantization (CPU): ``minmax`` of ``fastq._cpu.quant``.

``minmax(x3, blocks, out_min, out_max) -> (has_nan, has_inf)``: per block of the float32
view ``x3`` of shape ``(P, K, Q)`` with ``blocks = (bp, bk, bq)``, the min and max of the
finite values and 0 (every range contains 0), into float32 arrays of the grid shape
``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))``.  It reduces order-preserving uint32 keys of
the bits (float min/max do not vectorize); NaN and ±inf show up as keys at or beyond
those of ±inf, and only then an exact float pass over the finite values runs.

Work items are runs of rows: per tensor, chunks of the flat array; a group per row
(``PerGroup`` on the last axis), runs of groups; otherwise (split, block row, k-block)
items, where blocks of many rows (a range per column) are split into partial ranges so
that they too spread over the threads.
"""
import numpy as np
from numba import njit, prange

from .._threads import parallel_region
from ._parallel import AHEAD, BLOCK, SERIAL_BELOW
from ._word import bor, bxor, prefetch_span, shr, sub, unmanaged

KEY_POS_INF = np.uint32(0xFF800000)  # order key of +inf; NaN keys lie beyond ±inf's
KEY_NEG_INF = np.uint32(0x007FFFFF)


@njit(cache=True, inline="always")
def _key(u):
    """Order-preserving uint32 key of float32 bits: key(a) < key(b) iff a < b."""
    return bxor(u, bor(sub(np.uint32(0), shr(u, np.uint32(31))), np.uint32(0x80000000)))


@njit(cache=True)
def _key_items(u3, bp, bk, bq, w0, w1, kmin, kmax):
    """Key min/max of work items ``w0..w1``; item ``w = (split, pb, kb)`` is part
    ``split`` of the rows of block ``(pb, kb)``, into ``kmin[split, pb, kb]``.

    Rows go in pieces of at most ``BLOCK`` elements, prefetched ``AHEAD`` elements
    ahead in the flat array (rows and groups may be short)."""
    u3, kmin, kmax = unmanaged(u3), unmanaged(kmin), unmanaged(kmax)
    nsplit, Pb, Kb = kmin.shape[0], kmin.shape[1], kmin.shape[2]
    P, K, Q = u3.shape
    flat = u3.reshape(u3.size)
    step = BLOCK if bq == 1 else min(bq, BLOCK)
    sp, pb, kb = w0 // (Pb * Kb), w0 // Kb % Pb, w0 % Kb
    for _ in range(w0, w1):  # (counters, not divisions: items can be a few dozen bytes)
        k0, k1 = kb * bk, min(kb * bk + bk, K)
        if nsplit > 1:
            k0, k1 = kb * bk + sp * bk // nsplit, min(kb * bk + (sp + 1) * bk // nsplit, K)
        lo, hi = kmin[sp, pb, kb], kmax[sp, pb, kb]
        for p in range(pb * bp, min(pb * bp + bp, P)):
            for k in range(k0, k1):
                row, off = u3[p, k], (p * K + k) * Q
                for g in range(lo.size if bq > 1 else 1):
                    seg = row[g * bq:g * bq + bq] if bq > 1 else row
                    mn, mx = lo[g], hi[g]
                    for start in range(0, seg.size, step):
                        prefetch_span(flat, off + g * bq + start + AHEAD, step)
                        us = seg[start:start + step]
                        if bq == 1:  # one range per column: elementwise, vectorizes
                            ls, hs = lo[start:start + step], hi[start:start + step]
                            for j in range(us.size):
                                key = _key(us[j])
                                ls[j] = min(ls[j], key)
                                hs[j] = max(hs[j], key)
                        else:
                            for j in range(us.size):
                                key = _key(us[j])
                                mn = min(mn, key)
                                mx = max(mx, key)
                    if bq > 1:
                        lo[g], hi[g] = mn, mx
        kb += 1
        if kb == Kb:
            kb, pb = 0, pb + 1
            if pb == Pb:
                pb, sp = 0, sp + 1


@njit(cache=True)
def _key_groups(u, G, g0, g1, kmin, kmax):
    """Key min/max of the groups ``g0..g1`` of ``G`` consecutive elements of the flat
    ``u`` (a view whose every row is one group: blocks ``(1, 1, Q)``)."""
    u, kmin, kmax = unmanaged(u), unmanaged(kmin), unmanaged(kmax)
    step = min(G, BLOCK)
    for g in range(g0, g1):
        mn, mx = np.uint32(0xFFFFFFFF), np.uint32(0)
        end = g * G + G
        for start in range(g * G, end, step):
            prefetch_span(u, start + AHEAD, step)
            us = u[start:min(start + step, end)]
            for j in range(us.size):
                key = _key(us[j])
                mn = min(mn, key)
                mx = max(mx, key)
        kmin[g], kmax[g] = mn, mx


@njit(parallel=True, cache=True)
def _key_groups_parallel(u, G, kmin, kmax):
    n = kmin.size
    nchunks = min(n, 64)
    for c in prange(nchunks):
        _key_groups(u, G, c * n // nchunks, (c + 1) * n // nchunks, kmin, kmax)


@njit(parallel=True, cache=True)
def _key_parallel(u3, bp, bk, bq, kmin, kmax):
    """The work items of ``_key_items`` in at most 64 runs: ``kmin[split]`` are partials,
    so blocks of many rows (a range per column) spread over the threads too."""
    items = kmin.shape[0] * kmin.shape[1] * kmin.shape[2]
    nchunks = min(items, 64)
    for c in prange(nchunks):
        _key_items(u3, bp, bk, bq, c * items // nchunks, (c + 1) * items // nchunks,
                   kmin, kmax)


@njit(parallel=True, cache=True)
def _key_flat(u, nchunks, kmin, kmax):
    """Per-tensor: one partial key min/max per chunk of the flat array."""
    step = (u.size + nchunks - 1) // nchunks
    for c in prange(nchunks):
        seg = u[c * step:min(c * step + step, u.size)].reshape((1, 1, -1))
        _key_items(seg, 1, 1, max(seg.size, 1), 0, 1, kmin[c:c + 1], kmax[c:c + 1])


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
        kmin = np.full((nchunks, 1, 1, 1), 0xFFFFFFFF, np.uint32)
        kmax = np.zeros((nchunks, 1, 1, 1), np.uint32)
        with parallel_region():
            _key_flat(u3.reshape(-1), nchunks, kmin, kmax)
        kmin, kmax = kmin.min(axis=0), kmax.max(axis=0)
    elif blocks == (1, 1, x3.shape[2]):  # a group per row (PerGroup on the last axis)
        kmin = np.empty(out_min.size, np.uint32)
        kmax = np.empty(out_min.size, np.uint32)
        if x3.size >= SERIAL_BELOW:
            with parallel_region():
                _key_groups_parallel(u3.reshape(-1), x3.shape[2], kmin, kmax)
        else:
            _key_groups(u3.reshape(-1), x3.shape[2], 0, kmin.size, kmin, kmax)
    elif x3.size >= SERIAL_BELOW:
        items = out_min.shape[0] * out_min.shape[1]
        # rows of a block split into partial ranges, which stay under x3.size / 64
        nsplit = max(1, min(64 // items, bk, x3.size // (64 * out_min.size)))
        kmin = np.full((nsplit,) + out_min.shape, 0xFFFFFFFF, np.uint32)
        kmax = np.zeros((nsplit,) + out_min.shape, np.uint32)
        with parallel_region():
            _key_parallel(u3, bp, bk, bq, kmin, kmax)
        kmin, kmax = kmin.min(axis=0), kmax.max(axis=0)
    else:
        kmin = np.full((1,) + out_min.shape, 0xFFFFFFFF, np.uint32)
        kmax = np.zeros((1,) + out_min.shape, np.uint32)
        _key_items(u3, bp, bk, bq, 0, out_min.shape[0] * out_min.shape[1], kmin, kmax)
        kmin, kmax = kmin[0], kmax[0]
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
