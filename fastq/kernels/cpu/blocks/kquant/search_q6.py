"""The scale search of llama.cpp's q6_K (CPU): ``make_qx_quants`` of
``ggml/src/ggml-quants.c`` (ggml, MIT licence, Copyright (c) 2023-2024 The ggml
authors) with ``rmse_type=1`` and no weights, ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquants``) as ``search`` does ``make_qkx2_quants``:
sub-blocks side by side in the 16 lanes of ``lanes.vec`` vectors, each lane C's
algorithm in float32 and C's order, the candidates' codes rounded by
``search.round_codes``.
One more change to C's work keeps its bits: ``w * x`` (``w = x * x``) once per element,
not once per candidate (C's ``w * x[i] * l`` is ``(w * x[i]) * l``).
"""
import numpy as np
from numba import njit

from ...word import local_block, unmanaged
from .. import lanes as V
from .search import CLAMP, CLAMP_HIGH, CLAMP_LOW, EXACT, NO_CLAMP, round_codes


@njit(cache=True, nogil=True, error_model="numpy")
def make_qx_scales(xt, nmax, nk, scales, iscales):
    """``make_qx_quants(16, nmax, x_k, L_k, rmse_type=1, qw=NULL)`` for ``nk`` sub-blocks
    ``k`` at once (a multiple of 16, 64 at most: the 16 sub-blocks of up to 4 q6_K
    super-blocks), element ``i`` of sub-block ``k`` at ``nk * i + k`` in ``xt``; the
    scales into ``scales``.  Sub-block ``k``'s codes are
    ``clamp(nearest_int(iscales[k] * x), -nmax, nmax - 1) + nmax``, or all 0 where
    ``iscales[k]`` is NaN (an all-zero sub-block).  C's 19 candidate scales
    ``-(nmax + 0.1 * is) / max`` do not depend on each other's outcome; only the choice
    among them runs in C's order."""
    for g in range(0, nk, 16):
        _qx_vectors(xt, nmax, nk, scales, iscales, g)


@njit(cache=True, nogil=True, inline="always")
def _qx_sums(xt, ww, wx, nk, g, iscale, nmax, mode):
    """One candidate's ``sumlx``, ``suml2``."""
    zero = V.splat(np.float32(0.0))
    sum_lx, sum_l2 = zero, zero
    for i in range(16):
        l = round_codes(V.mul(iscale, V.load(xt, nk * i + g)), -nmax, nmax - 1, mode)
        sum_lx = V.add(sum_lx, V.mul(V.load(wx, 16 * i), l))
        sum_l2 = V.add(sum_l2, V.mul(V.mul(V.load(ww, 16 * i), l), l))
    return sum_lx, sum_l2


@njit(cache=True, nogil=True, error_model="numpy")
def _qx_vectors(xt, nmax, nk, scales, iscales, g):
    xt = unmanaged(xt)  # (no reference counts: a call in the candidate loop spills)
    ww = local_block(xt, 256)  # x * x, element i at 16 * i + lane
    wx = local_block(xt, 256)  # (x * x) * x
    inv = local_block(xt, 304)  # the candidates' inverse scales
    zero = V.splat(np.float32(0.0))
    fnmax = np.float32(nmax)
    xmin = xmax = finite = zero
    for i in range(16):
        v = V.load(xt, nk * i + g)
        xmin = V.minimum(v, xmin)  # (a NaN element never enters)
        xmax = V.maximum(v, xmax)
        w = V.mul(v, v)
        V.store(ww, 16 * i, w)
        V.store(wx, 16 * i, V.mul(w, v))
        finite = V.add(finite, w)  # (inf or NaN once an element is: see `exact`)
    # C's max: the first element of the largest magnitude, the larger of the extremes
    # unless a lane holds both +a and -a (then the first of them, by a scan)
    neg = V.sub(zero, xmin)
    amax = V.maximum(xmax, neg)
    big = V.select(V.gt(neg, xmax), xmin, xmax)
    if V.any(V.both(V.eq(neg, xmax), V.gt(xmax, zero))):
        big = amax = zero
        for i in range(16):
            v = V.load(xt, nk * i + g)
            ax = V.maximum(v, V.sub(zero, v))  # (|v|; a NaN lane stays NaN, never wins)
            more = V.gt(ax, amax)
            amax = V.select(more, ax, amax)
            big = V.select(more, v, big)
    flat = V.lt(amax, V.splat(np.float32(1e-15)))  # GROUP_MAX_EPS: all zero
    # |iscale * x| <= ~33 for finite x: C's integer trick only where a (not flat) lane
    # holds an inf or NaN, or x * x overflows the sum (|x| > ~4e18: the exact path is
    # right for any input, just slower)
    exact = not V.every(V.either(V.lt(finite, V.splat(np.float32(np.inf))), flat))
    # the 19 inverse scales first: divided inside the candidate loop, each one's
    # latency stalled the start of its candidate's sums
    for c in range(19):  # is = 0 (C's first pass), then -9..-1, 1..9
        step = 0 if c == 0 else (c - 10 if c < 10 else c - 9)
        top = -fnmax if c == 0 else -(fnmax + np.float32(0.1) * np.float32(step))
        V.store(inv, 16 * c, V.div(V.splat(top), big))
    # Which clamps a candidate needs: |iscale * x| <= |top| * (1 + 2**-22) for finite
    # x, below nmax + 0.5 (no code under -nmax) up to is = 4 and below nmax - 0.5 (none
    # over nmax - 1) for is = -9..-6.  Codes over nmax - 1 come from elements of the
    # sign opposite to max only, the largest from the most extreme of them and the
    # largest |iscale| (is = 9, rounding is monotone): if its code is in range in every
    # lane, no candidate needs the upper clamp.  One test per group (a test per
    # candidate saved more clamps and lost it to mispredicted branches).
    high_free = False
    if not exact:
        opposite = V.select(V.gt(big, zero), xmin, xmax)
        top_code = V.rint(V.mul(V.load(inv, 16 * 18), opposite))
        high_free = V.every(V.either(flat, V.lt(top_code, V.splat(fnmax - np.float32(0.5)))))
    scale = best = best_is = zero
    for c in range(19):
        iscale = V.load(inv, 16 * c)
        if exact:
            sum_lx, sum_l2 = _qx_sums(xt, ww, wx, nk, g, iscale, nmax, EXACT)
        elif c <= 13 and (high_free or (c >= 1 and c <= 4)):
            sum_lx, sum_l2 = _qx_sums(xt, ww, wx, nk, g, iscale, nmax, NO_CLAMP)
        elif c <= 13:
            sum_lx, sum_l2 = _qx_sums(xt, ww, wx, nk, g, iscale, nmax, CLAMP_HIGH)
        elif high_free:
            sum_lx, sum_l2 = _qx_sums(xt, ww, wx, nk, g, iscale, nmax, CLAMP_LOW)
        else:
            sum_lx, sum_l2 = _qx_sums(xt, ww, wx, nk, g, iscale, nmax, CLAMP)
        if c == 0:  # C: scale = suml2 ? sumlx / suml2 : 0; best = scale * sumlx
            scale = V.select(V.eq(sum_l2, zero), zero, V.div(sum_lx, sum_l2))
            best = V.mul(scale, sum_lx)
            best_is = iscale
            continue
        # C: if (suml2 > 0 && sumlx * sumlx > best * suml2) take this candidate
        take = V.both(V.gt(sum_l2, zero), V.gt(V.mul(sum_lx, sum_lx), V.mul(best, sum_l2)))
        s = V.div(sum_lx, sum_l2)
        scale = V.select(take, s, scale)
        best = V.select(take, V.mul(s, sum_lx), best)
        best_is = V.select(take, iscale, best_is)
    V.store(scales, g, V.select(flat, zero, scale))
    V.store(iscales, g, V.select(flat, V.splat(np.float32(np.nan)), best_is))
