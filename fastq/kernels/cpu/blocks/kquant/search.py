"""The scale searches of llama.cpp's K-quants (CPU): ``nearest_int`` and
``make_qkx2_quants`` (q4_K, q5_K) of ``ggml/src/ggml-quants.c`` (ggml, MIT licence,
Copyright (c) 2023-2024 The ggml authors), ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquants``) with independent sub-blocks side by side in the 16
lanes of ``lanes.vec`` vectors: each lane runs C's algorithm on its own sub-block, step
for step, in float32 and in C's order (its sums over the elements one after the other,
kept in registers), and C's branches become per-lane selects.  ``make_qx_quants``
(q6_K) is in ``search_q6``, on the same rounding of a candidate's codes
(``round_codes``).

Two changes to C's work keep its bits (and a third for q6_K, see ``search_q6``):

* A candidate's codes are rounded in float, ``rint(f)`` clamped in float: equal to C's
  ``(float)clamp(nearest_int(f))`` whenever ``|f| < 2**21``, with no trip through int32
  and back.  Whether that holds is checked per candidate on each lane's extreme elements
  (``iscale * (x - min)`` is monotone in ``x``); a group with any ``f`` out of range
  (inf, NaN, scales that overflow on subnormal blocks) takes C's integer trick instead.
* No codes kept per candidate: C copies a candidate's codes when it takes it; a lane
  here keeps the inverse scale and min it rounded with (``make_*_scales``), from which
  the codes are rounded again (the same operations on the same values) only where they
  are needed: ``make_qkx2_lanes``, or where a super-block keeps the search's codes.
"""
import numpy as np
from numba import njit

from ...word import as_bits, band, local_block, sub, unmanaged
from .. import lanes as V

MAGIC = 12582912.0  # 1.5 * 2**23: float32 addition rounds to an integer (half to even)
FLOAT_PATH_LIMIT = 2097152.0  # 2**21: |f| below it, rint(f) is nearest_int(f)


@njit(cache=True, nogil=True, inline="always")
def nearest_int(f):
    """llama.cpp's ``nearest_int``: round half to even through ``f + 1.5 * 2**23``."""
    return np.int64(as_bits(f + np.float32(MAGIC)) & np.uint32(0x7FFFFF)) - 0x400000


@njit(cache=True, nogil=True, inline="always")
def clamp(v, lo, hi):
    return max(lo, min(hi, v))


@njit(cache=True, nogil=True, inline="always")
def nearest_int32(f):
    """``nearest_int`` in 32-bit lanes (``band``: a plain ``&`` widens to 64)."""
    return sub(np.int32(band(as_bits(f + np.float32(MAGIC)), np.uint32(0x7FFFFF))),
               np.int32(0x400000))


# how a candidate's codes are rounded (``round_codes``): C's integer trick, or rint and a
# clamp in float to both bounds, to the upper or lower one only, or none (the extreme
# codes of every lane already in range)
EXACT, CLAMP, CLAMP_HIGH, CLAMP_LOW, NO_CLAMP = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True, inline="always")
def round_codes(f, lo, hi, mode):
    """``float(clamp(nearest_int(f), lo, hi))`` lane by lane, rounded as ``mode`` says."""
    if mode == EXACT:
        return V.nearest_int_clamped(f, lo, hi)
    if mode == CLAMP or mode == CLAMP_LOW:
        # (before rint: rint(max(f, lo - 0.5)) is max(rint(f), lo) but for lo = 0 may be
        # -0.0, which adds and multiplies into the sums as 0.0 does; a max with 0 after
        # rint compiles to a compare and a mask, one instruction more)
        f = V.maximum(f, V.splat(np.float32(lo) - np.float32(0.5)))
    r = V.rint(f)
    if mode == CLAMP or mode == CLAMP_HIGH:
        r = V.minimum(r, V.splat(np.float32(hi)))
    return r


@njit(cache=True, nogil=True, inline="always")
def _in_range(f):
    limit = np.float32(FLOAT_PATH_LIMIT)
    return V.both(V.lt(f, V.splat(limit)), V.gt(f, V.splat(-limit)))  # (False for NaN)


@njit(cache=True, nogil=True, error_model="numpy")
def make_qkx2_lanes(xt, wt, L, nmax, rmin, rdelta, nstep, scales, mins, nk):
    """``make_qkx2_quants(32, nmax, x_k, w_k, L_k, &mins[k], Laux, rmin, rdelta, nstep,
    use_mad=false)`` for ``nk`` sub-blocks ``k`` at once (a multiple of 16, 64 at most:
    the 8 sub-blocks of up to 8 super-blocks): ``xt``, ``wt`` and ``L`` hold element
    ``i`` of sub-block ``k`` at ``nk * i + k``; the scales and mins into ``scales``,
    ``mins``.  ``make_qkx2_scales`` and the codes from its inverse scales."""
    iscales, offsets = local_block(xt, 64), local_block(xt, 64)
    make_qkx2_scales(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets, nk)
    for k in range(nk):
        for i in range(32):
            f = iscales[k] * (xt[nk * i + k] - offsets[k])
            L[nk * i + k] = max(np.int32(0), min(np.int32(nmax), nearest_int32(f)))


@njit(cache=True, nogil=True, error_model="numpy")
def make_qkx2_scales(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets, nk):
    """``make_qkx2_lanes`` without the codes: sub-block ``k``'s codes are
    ``clamp(nearest_int(iscales[k] * (x - offsets[k])), 0, nmax)`` (C rounds them so for
    the candidate it keeps; 0 and 0 for a flat sub-block, whose codes are all 0).  Lanes
    go 32 at a time (two groups of 16 whose error sums run in one loop), the rest 16."""
    g = 0
    while g + 32 <= nk:
        _qkx2_pair(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets, nk, g)
        g += 32
    if g < nk:
        _qkx2_vectors(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets,
                      nk, g)


@njit(cache=True, nogil=True, inline="always")
def _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, mode):
    """One candidate: its codes (into ``fl``) and C's ``sum_l``, ``sum_l2``, ``sum_xl``."""
    zero = V.splat(np.float32(0.0))
    sum_l, sum_l2, sum_xl = zero, zero, zero
    for i in range(32):
        v = V.load(xt, nk * i + g)
        w = V.load(wt, nk * i + g)
        l = round_codes(V.mul(iscale, V.sub(v, lo)), 0, nmax, mode)
        V.store(fl, 16 * i, l)
        wl = V.mul(w, l)
        sum_l = V.add(sum_l, wl)
        sum_l2 = V.add(sum_l2, V.mul(wl, l))
        sum_xl = V.add(sum_xl, V.mul(wl, v))
    return sum_l, sum_l2, sum_xl


@njit(cache=True, nogil=True, inline="always")
def _needs_exact(iscale, lo, xmin, hi, flat):
    """Whether a (not flat) lane rounds an ``f`` out of the float path's range: the
    extremes of ``iscale * (x - lo)`` are at the lane's smallest and largest element."""
    ok = V.both(_in_range(V.mul(iscale, V.sub(xmin, lo))),
                _in_range(V.mul(iscale, V.sub(hi, lo))))
    return not V.every(V.either(flat, ok))


@njit(cache=True, nogil=True, inline="always")
def _rounding(iscale, lo, xmin, hi, flat, nmax):
    """How this candidate's codes must be rounded: EXACT if ``_needs_exact``, else which
    clamps can change a code (``rint`` is monotone: the codes of a lane's extreme
    elements bound all of its codes)."""
    if _needs_exact(iscale, lo, xmin, hi, flat):
        return EXACT
    a = V.rint(V.mul(iscale, V.sub(xmin, lo)))
    b = V.rint(V.mul(iscale, V.sub(hi, lo)))
    below, above = V.splat(np.float32(-1.0)), V.splat(np.float32(nmax + 1))
    low_ok = V.every(V.either(flat, V.both(V.gt(a, below), V.gt(b, below))))
    high_ok = V.every(V.either(flat, V.both(V.lt(a, above), V.lt(b, above))))
    if low_ok:
        return NO_CLAMP if high_ok else CLAMP_HIGH
    return CLAMP_LOW if high_ok else CLAMP


@njit(cache=True, nogil=True, error_model="numpy")
def _qkx2_vectors(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets, nk,
                  g):
    """``make_qkx2_quants`` of the 16 lanes ``g .. g + 15`` (``_qkx2_pair`` for two
    groups)."""
    xt, wt = unmanaged(xt), unmanaged(wt)  # (a reference count call per step spills)
    fl = local_block(xt, 512)  # a candidate's codes (float), element i at 16 * i + lane
    zero = V.splat(np.float32(0.0))
    fnmax = np.float32(nmax)
    lo, hi, xmin, flat, sum_w, sum_x, best_is, scale, best = _qkx2_first(xt, wt, nk, g,
                                                                         nmax)
    best_lo = lo  # (the inverse scale and min of the codes kept)
    iscale = V.div(V.splat(rmin + fnmax), V.sub(hi, lo))  # (rdelta * 0 is 0)
    for step in range(nstep + 1):
        sum_l, sum_l2, sum_xl = _qkx2_step_sums(xt, wt, fl, nk, g, iscale, lo, xmin, hi,
                                                flat, nmax)
        D, this_scale, this_min = _qkx2_fit(sum_w, sum_x, sum_l, sum_l2, sum_xl)
        # the next candidate's inverse scale for either outcome, divided while the error
        # sums run (off the chain of dependent steps)
        top = V.splat(rmin + rdelta * np.float32(step + 1) + fnmax)
        next_kept, next_taken = V.div(top, V.sub(hi, lo)), V.div(top, V.sub(hi, this_min))
        err = zero
        for i in range(32):
            v = V.load(xt, nk * i + g)
            diff = V.sub(V.add(V.mul(this_scale, V.load(fl, 16 * i)), this_min), v)
            err = V.add(err, V.mul(V.load(wt, nk * i + g), V.mul(diff, diff)))
        take = V.both(V.gt(D, zero), V.lt(err, best))  # C: D > 0 && cur_error < best
        best = V.select(take, err, best)
        scale = V.select(take, this_scale, scale)
        best_is = V.select(take, iscale, best_is)
        best_lo = V.select(take, lo, best_lo)
        lo = V.select(take, this_min, lo)
        iscale = V.select(take, next_taken, next_kept)
    _qkx2_store(scales, mins, iscales, offsets, g, flat, scale, lo, hi, best_is, best_lo)


@njit(cache=True, nogil=True, inline="always")
def _qkx2_step_sums(xt, wt, fl, nk, g, iscale, lo, xmin, hi, flat, nmax):
    """``_qkx2_sums`` with the rounding this candidate needs (``_rounding``; one loop
    per mode, the mode a compile-time constant in each)."""
    mode = _rounding(iscale, lo, xmin, hi, flat, nmax)
    if mode == NO_CLAMP:
        return _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, NO_CLAMP)
    if mode == CLAMP_HIGH:
        return _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, CLAMP_HIGH)
    if mode == CLAMP_LOW:
        return _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, CLAMP_LOW)
    if mode == CLAMP:
        return _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, CLAMP)
    return _qkx2_sums(xt, wt, fl, nk, g, iscale, lo, nmax, EXACT)


@njit(cache=True, nogil=True, inline="always")
def _qkx2_fit(sum_w, sum_x, sum_l, sum_l2, sum_xl):
    """C's least-squares scale and min of a step (min at most 0), and D."""
    zero = V.splat(np.float32(0.0))
    D = V.sub(V.mul(sum_w, sum_l2), V.mul(sum_l, sum_l))
    this_scale = V.div(V.sub(V.mul(sum_w, sum_xl), V.mul(sum_x, sum_l)), D)
    this_min = V.div(V.sub(V.mul(sum_l2, sum_x), V.mul(sum_l, sum_xl)), D)
    positive = V.gt(this_min, zero)
    this_scale = V.select(positive, V.div(sum_xl, sum_l2), this_scale)
    return D, this_scale, V.select(positive, zero, this_min)


@njit(cache=True, nogil=True, inline="always")
def _qkx2_first(xt, wt, nk, g, nmax):
    """C's start for one group of 16 lanes: min (at most 0), max, sums of w and w * x,
    the scale ``1 / (nmax / (max - min))`` and the error of its codes."""
    zero = V.splat(np.float32(0.0))
    lo = hi = V.load(xt, g)
    sum_w = V.load(wt, g)
    sum_x = V.mul(sum_w, lo)
    for i in range(1, 32):
        v = V.load(xt, nk * i + g)
        w = V.load(wt, nk * i + g)
        lo = V.select(V.lt(v, lo), v, lo)
        hi = V.select(V.gt(v, hi), v, hi)
        sum_w = V.add(sum_w, w)
        sum_x = V.add(sum_x, V.mul(w, v))
    xmin = lo
    lo = V.select(V.gt(lo, zero), zero, lo)
    flat = V.eq(hi, lo)  # C returns early: all codes 0, min -lo
    iscale = V.div(V.splat(np.float32(nmax)), V.sub(hi, lo))
    scale = V.div(V.splat(np.float32(1.0)), iscale)
    best = zero
    exact = _needs_exact(iscale, lo, xmin, hi, flat)
    for i in range(32):
        v = V.load(xt, nk * i + g)
        l = round_codes(V.mul(iscale, V.sub(v, lo)), 0, nmax, EXACT if exact else CLAMP)
        diff = V.sub(V.add(V.mul(scale, l), lo), v)
        best = V.add(best, V.mul(V.load(wt, nk * i + g), V.mul(diff, diff)))
    return lo, hi, xmin, flat, sum_w, sum_x, iscale, scale, best


@njit(cache=True, nogil=True, error_model="numpy")
def _qkx2_pair(xt, wt, nmax, rmin, rdelta, nstep, scales, mins, iscales, offsets, nk, g):
    """``_qkx2_vectors`` of lanes ``g .. g + 31`` as two groups a, b: a step's error
    sums (one chain of 32 dependent adds per vector) leave one group's pass bound by
    latency, so the two groups' error sums share one loop; the sums passes stay one
    group each (two groups' codes and sums at once need more than AVX2's 16
    registers)."""
    xt, wt = unmanaged(xt), unmanaged(wt)
    fl_a, fl_b = local_block(xt, 512), local_block(xt, 512)
    zero = V.splat(np.float32(0.0))
    fnmax = np.float32(nmax)
    lo_a, hi_a, xmin_a, flat_a, sw_a, sx_a, bis_a, scale_a, best_a = _qkx2_first(
        xt, wt, nk, g, nmax)
    lo_b, hi_b, xmin_b, flat_b, sw_b, sx_b, bis_b, scale_b, best_b = _qkx2_first(
        xt, wt, nk, g + 16, nmax)
    blo_a, blo_b = lo_a, lo_b
    top = V.splat(rmin + fnmax)  # (rdelta * 0 is 0)
    is_a, is_b = V.div(top, V.sub(hi_a, lo_a)), V.div(top, V.sub(hi_b, lo_b))
    for step in range(nstep + 1):
        l_a, l2_a, xl_a = _qkx2_step_sums(xt, wt, fl_a, nk, g, is_a, lo_a, xmin_a, hi_a,
                                          flat_a, nmax)
        l_b, l2_b, xl_b = _qkx2_step_sums(xt, wt, fl_b, nk, g + 16, is_b, lo_b, xmin_b,
                                          hi_b, flat_b, nmax)
        D_a, ts_a, tm_a = _qkx2_fit(sw_a, sx_a, l_a, l2_a, xl_a)
        D_b, ts_b, tm_b = _qkx2_fit(sw_b, sx_b, l_b, l2_b, xl_b)
        top = V.splat(rmin + rdelta * np.float32(step + 1) + fnmax)
        kept_a, taken_a = V.div(top, V.sub(hi_a, lo_a)), V.div(top, V.sub(hi_a, tm_a))
        kept_b, taken_b = V.div(top, V.sub(hi_b, lo_b)), V.div(top, V.sub(hi_b, tm_b))
        err_a, err_b = zero, zero
        for i in range(32):
            va, vb = V.load(xt, nk * i + g), V.load(xt, nk * i + g + 16)
            da = V.sub(V.add(V.mul(ts_a, V.load(fl_a, 16 * i)), tm_a), va)
            db = V.sub(V.add(V.mul(ts_b, V.load(fl_b, 16 * i)), tm_b), vb)
            err_a = V.add(err_a, V.mul(V.load(wt, nk * i + g), V.mul(da, da)))
            err_b = V.add(err_b, V.mul(V.load(wt, nk * i + g + 16), V.mul(db, db)))
        take_a = V.both(V.gt(D_a, zero), V.lt(err_a, best_a))  # C: D > 0 && err < best
        take_b = V.both(V.gt(D_b, zero), V.lt(err_b, best_b))
        best_a, best_b = V.select(take_a, err_a, best_a), V.select(take_b, err_b, best_b)
        scale_a = V.select(take_a, ts_a, scale_a)
        scale_b = V.select(take_b, ts_b, scale_b)
        bis_a, bis_b = V.select(take_a, is_a, bis_a), V.select(take_b, is_b, bis_b)
        blo_a, blo_b = V.select(take_a, lo_a, blo_a), V.select(take_b, lo_b, blo_b)
        lo_a, lo_b = V.select(take_a, tm_a, lo_a), V.select(take_b, tm_b, lo_b)
        is_a, is_b = V.select(take_a, taken_a, kept_a), V.select(take_b, taken_b, kept_b)
    _qkx2_store(scales, mins, iscales, offsets, g, flat_a, scale_a, lo_a, hi_a, bis_a, blo_a)
    _qkx2_store(scales, mins, iscales, offsets, g + 16, flat_b, scale_b, lo_b, hi_b, bis_b,
                blo_b)


@njit(cache=True, nogil=True, inline="always")
def _qkx2_store(scales, mins, iscales, offsets, g, flat, scale, lo, hi, best_is, best_lo):
    zero = V.splat(np.float32(0.0))
    V.store(scales, g, V.select(flat, zero, scale))
    V.store(mins, g, V.sub(zero, V.select(flat, hi, lo)))
    V.store(iscales, g, V.select(flat, zero, best_is))
    V.store(offsets, g, V.select(flat, zero, best_lo))
