"""The scales of the GGML legacy formats (CPU), a tile of TILE blocks of 32 float32 at a
time, for the block loops of ``ggml``: each block's largest magnitude, or its signed
maximum (``_abs_max``: the first element of largest magnitude, as NumPy's ``argmax``
of ``abs``), or its minimum and maximum (NumPy's reductions); then the scale ``d`` and
``1 / d`` (0 where ``d == 0``), with the float32 operations of llama.cpp's reference
quantizer as the ``gguf`` package writes them (``ggml/src/ggml-quants.c``, MIT).

A whole tile without NaN runs on lanes, a block a lane: each block's halves are
compared lane by lane, then the 16 blocks' vectors are reduced together by
``lanes.fold_max``/``fold_min`` (15 folds where 16 reductions take 64 steps), and the
scales are computed for 16 blocks by one vector division.  The few blocks whose
reduction leaves a choice that the rule fixes (a tie of signs, a zero of either sign)
are redone block by block, as are a tile with a NaN and a partial tile.  See
docs/design.md ("Legacy formats").
"""
import numpy as np
from numba import njit

from ..word import as_bits, as_float, band, bor
from . import lanes as V

TILE = 16  # (blocks: one a lane)
NAN_TOP = np.uint32(0x7FC00000)  # (a block's top when it holds a NaN: above inf)


@njit(cache=True, nogil=True, inline="always")
def _abs_top_lanes(xb):
    """Bits of the largest magnitude of the block of 32 at ``xb`` (two 16-lane vectors:
    the float max of the magnitudes, the unsigned max of their bits for non-NaN
    values), NAN_TOP where it holds a NaN."""
    v0, v1 = V.load(xb, 0), V.load(xb, 16)
    if not V.every(V.both(V.eq(v0, v0), V.eq(v1, v1))):
        return NAN_TOP
    return as_bits(V.reduce_max(V.maximum(V.fabs(v0), V.fabs(v1))))


@njit(cache=True, nogil=True, inline="always")
def _abs_max(xb, width):
    """Bits of the largest magnitude of ``xb`` (above 0x7f800000: a NaN) and the first
    element with it (NumPy's ``argmax`` of ``abs``): the larger of the largest positive
    and negative magnitudes (two vectorized max reductions); a tie (+v and -v, or all
    zeros) scans for the first."""
    mask = np.uint32(0x7FFFFFFF)
    pos = neg = np.uint32(0)
    for j in range(width):
        u = as_bits(xb[j])
        a = band(u, mask)
        negative = u > mask
        pos = max(pos, np.uint32(0) if negative else a)
        neg = max(neg, a if negative else np.uint32(0))
    top = max(pos, neg)
    # (a select, not a branch: which sign wins is a coin flip on real data)
    big = as_float(pos if pos > neg else bor(neg, np.uint32(0x80000000)))
    if pos == neg:
        for j in range(width):
            if band(as_bits(xb[j]), mask) == top:
                return top, xb[j]
    return top, big


@njit(cache=True, nogil=True, inline="always")
def _abs_max_lanes(xb, width):
    """``_abs_max`` of a block of 32 as two 16-lane vectors: of its max and min (float
    reductions), the one of larger magnitude; a NaN or a tie (+v and -v, all zeros) takes
    ``_abs_max``."""
    v0, v1 = V.load(xb, 0), V.load(xb, 16)
    if V.every(V.both(V.eq(v0, v0), V.eq(v1, v1))):
        hi = V.reduce_max(V.maximum(v0, v1))
        lo = V.reduce_min(V.minimum(v0, v1))
        if hi != -lo:  # (a select: which sign wins is a coin flip on real data)
            return as_bits(max(hi, -lo)), hi if hi > -lo else lo
    return _abs_max(xb, width)


@njit(cache=True, nogil=True)
def _halves(x, b, width):
    """Lane by lane max and min of block ``b``'s two halves, and where neither is NaN."""
    v0, v1 = V.load(x, b * width), V.load(x, b * width + 16)
    return V.maximum(v0, v1), V.minimum(v0, v1), V.both(V.eq(v0, v0), V.eq(v1, v1))


def _fold_level(inner, blocks, group):
    """The max and min of each of ``2 * blocks`` blocks from ``b`` (and where no element
    is NaN): ``inner``'s results for the first and the second ``blocks`` blocks, folded
    at ``group`` lanes (``lanes.fold_max``).  After the levels of 1, 2, 4 and 8 blocks,
    lane ``k`` holds block ``b + k``'s.  (Plain functions, which LLVM inlines into the
    kernel: Numba's own ``inline="always"`` retypes each of a tree's 31 nested calls in
    each of the five format loops, a cold compile several times longer; docs/design.md,
    "Legacy formats".  Not cached themselves: they exist only inside the cached
    kernels.)"""
    @njit(nogil=True)
    def folded(x, b, width):
        h0, l0, k0 = inner(x, b, width)
        h1, l1, k1 = inner(x, b + blocks, width)
        return V.fold_max(h0, h1, group), V.fold_min(l0, l1, group), V.both(k0, k1)
    return folded


_folded16 = _fold_level(_fold_level(_fold_level(_fold_level(_halves, 1, 8), 2, 4), 4, 2), 8, 1)


@njit(cache=True, nogil=True)
def _signed_max_scale(x, b, width, step, tops, ds, ids, g):
    top, big = _abs_max_lanes(x[b * width:(b + 1) * width], width)
    d = big * step  # (= big / -nmax exactly: a power of two)
    tops[g], ds[g], ids[g] = as_float(top), d, _inverse(d)


@njit(cache=True, nogil=True, inline="always")
def signed_max_scales(x, t, nt, width, step, tops, ds, ids):
    """Blocks ``t..t + nt``: ``tops[g]`` the largest magnitude, ``ds[g] = max * step``
    (``max`` of ``_abs_max``) and ``ids[g]`` its ``_inverse``.  A whole tile of 16
    blocks without NaN runs on lanes, a block a lane (the same float32 operations); a
    block whose max and min have one magnitude (+v and -v, all zeros), and any tile
    with a NaN or fewer blocks, take ``_abs_max_lanes`` block by block."""
    if nt == TILE:
        hi, lo, ok = _folded16(x, t, width)
        if V.every(ok):
            zero = V.splat(np.float32(0.0))
            neg = V.sub(zero, lo)
            tie = V.eq(hi, neg)
            d = V.mul(V.select(V.gt(hi, neg), hi, lo), V.splat(step))
            V.store(tops, 0, V.select(tie, V.splat(np.float32(np.nan)), V.maximum(hi, neg)))
            V.store(ds, 0, d)
            V.store(ids, 0, _inverse_lanes(d))
            if V.any(tie):
                for g in range(nt):
                    if tops[g] != tops[g]:  # (marked a tie)
                        _signed_max_scale(x, t + g, width, step, tops, ds, ids, g)
            return
    for g in range(nt):
        _signed_max_scale(x, t + g, width, step, tops, ds, ids, g)


# (The block-by-block forms are calls, not inlined: they run for the odd block and the
# partial tile only, and every inlined copy of them lengthens the cold compile.)
@njit(cache=True, nogil=True)
def _abs_top_scale(x, b, width, tops, ds, ids, g):
    top = _abs_top_lanes(x[b * width:(b + 1) * width])
    d = as_float(top) / np.float32(127.0)
    tops[g], ds[g], ids[g] = as_float(top), d, _inverse(d)


@njit(cache=True, nogil=True, inline="always")
def abs_top_scales(x, t, nt, width, tops, ds, ids):
    """Blocks ``t..t + nt``: ``tops[g]`` the largest magnitude (NaN where the block holds
    one), ``ds[g] = tops[g] / 127`` and ``ids[g]`` its ``_inverse``; a whole tile of 16
    blocks without NaN on lanes, a block a lane (the same float32 operations)."""
    if nt == TILE:
        hi, lo, ok = _folded16(x, t, width)
        if V.every(ok):
            zero = V.splat(np.float32(0.0))
            top = V.maximum(hi, V.sub(zero, lo))  # (+0 for a block of zeros)
            d = V.div(top, V.splat(np.float32(127.0)))
            V.store(tops, 0, top)
            V.store(ds, 0, d)
            V.store(ids, 0, _inverse_lanes(d))
            return
    for g in range(nt):
        _abs_top_scale(x, t + g, width, tops, ds, ids, g)


@njit(cache=True, nogil=True, inline="always")
def _last_equal(xb, width, v):
    """``v``, or when it is a zero, the last element of ``xb`` equal to it (+0 or -0)."""
    if v != 0:
        return v
    for j in range(width - 1, -1, -1):
        if xb[j] == 0:
            return xb[j]
    return v


@njit(cache=True, nogil=True, inline="always")
def _min_max(xb, width):
    """``min`` and ``max`` of the 32 elements of ``xb`` ignoring NaN (and whether it
    holds one), of equal ones (+0 and -0) the last, as NumPy's reductions give them (C
    keeps the first).  Two 16-lane vectors, NaN lanes replaced by the start values
    (+-FLT_MAX), a lane-wise min/max and one across the lanes; only a zero result needs
    the last-of-equal rule, by a scan."""
    top = V.splat(np.float32(3.4028234663852886e38))
    bottom = V.splat(np.float32(-3.4028234663852886e38))
    v0, v1 = V.load(xb, 0), V.load(xb, 16)
    ok0, ok1 = V.eq(v0, v0), V.eq(v1, v1)
    lo = V.reduce_min(V.minimum(V.select(ok0, v0, top), V.select(ok1, v1, top)))
    hi = V.reduce_max(V.maximum(V.select(ok0, v0, bottom), V.select(ok1, v1, bottom)))
    return (_last_equal(xb, width, lo), _last_equal(xb, width, hi),
            not V.every(V.both(ok0, ok1)))


@njit(cache=True, nogil=True, inline="always")
def _inverse(d):
    return np.float32(1.0) / d if d != 0 else np.float32(0.0)


@njit(cache=True, nogil=True, inline="always")
def _inverse_lanes(d):
    """``_inverse`` lane by lane."""
    zero = V.splat(np.float32(0.0))
    return V.select(V.eq(d, zero), zero, V.div(V.splat(np.float32(1.0)), d))


@njit(cache=True, nogil=True)
def _min_max_scale(x, b, width, cap, los, ds, ids, nans, g):
    lo, hi, has_nan = _min_max(x[b * width:(b + 1) * width], width)
    d = (hi - lo) / cap
    los[g], ds[g], ids[g], nans[g] = lo, d, _inverse(d), np.float32(has_nan)


@njit(cache=True, nogil=True, inline="always")
def min_max_scales(x, t, nt, width, cap, los, ds, ids, nans):
    """Blocks ``t..t + nt``: ``los[g]`` the minimum (``_min_max``), ``ds[g] = (max - min)
    / cap``, ``ids[g]`` its ``_inverse`` and ``nans[g]`` 1 where the block holds a NaN,
    else 0.  A whole tile of 16 blocks without NaN runs on lanes, a block a lane (the
    same float32 operations); a block whose min or max is a zero (+0 or -0: the last
    one counts) and any tile with a NaN or fewer blocks take ``_min_max``."""
    if nt == TILE:
        hi, lo, ok = _folded16(x, t, width)
        if V.every(ok):
            zero = V.splat(np.float32(0.0))
            d = V.div(V.sub(hi, lo), V.splat(cap))
            V.store(los, 0, lo)
            V.store(ds, 0, d)
            V.store(ids, 0, _inverse_lanes(d))
            signed_zero = V.either(V.eq(hi, zero), V.eq(lo, zero))
            V.store(nans, 0, V.select(signed_zero, V.splat(np.float32(-1.0)), zero))
            if V.any(signed_zero):
                for g in range(nt):
                    if nans[g] < 0:  # (marked)
                        _min_max_scale(x, t + g, width, cap, los, ds, ids, nans, g)
            return
    for g in range(nt):
        _min_max_scale(x, t + g, width, cap, los, ds, ids, nans, g)
