"""The scale searches of llama.cpp's K-quants (CPU): ``nearest_int``, ``make_qkx2_quants``
and ``make_qx_quants`` of ``ggml/src/ggml-quants.c`` (ggml, MIT licence, Copyright (c)
2023-2024 The ggml authors), ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquants``) with independent sub-blocks side by side in
vector lanes (those of several super-blocks: a lane loop must be long enough for LLVM's
vectorized loop).
"""
import numpy as np
from numba import njit

from ..word import as_bits, band, local_block, sub


@njit(cache=True, nogil=True, inline="always")
def nearest_int(f):
    """llama.cpp's ``nearest_int``: round half to even through ``f + 1.5 * 2**23``."""
    return np.int64(as_bits(f + np.float32(12582912.0)) & np.uint32(0x7FFFFF)) - 0x400000


@njit(cache=True, nogil=True, inline="always")
def clamp(v, lo, hi):
    return max(lo, min(hi, v))


@njit(cache=True, nogil=True, inline="always")
def nearest_int32(f):
    """``nearest_int`` in 32-bit lanes (``band``: a plain ``&`` widens to 64)."""
    return sub(np.int32(band(as_bits(f + np.float32(12582912.0)), np.uint32(0x7FFFFF))),
               np.int32(0x400000))


@njit(cache=True, nogil=True, error_model="numpy")
def make_qkx2_lanes(xt, wt, L, nmax, rmin, rdelta, nstep, scales, mins, nk):
    """``make_qkx2_quants(32, nmax, x_k, w_k, L_k, &mins[k], Laux, rmin, rdelta, nstep,
    use_mad=false)`` for ``nk`` sub-blocks ``k`` at once (64 at most: the 8 sub-blocks of
    up to 8 super-blocks), lane ``k`` of each step: ``xt``, ``wt`` and ``L`` hold element
    ``i`` of sub-block ``k`` at ``nk * i + k``.  Each lane runs C's algorithm on its own,
    step for step, in float32 and in C's order (its sums over the elements one after the
    other); C's branches become per-lane selects, so the lanes run as vectors and give
    C's bits.  (A loop of 8 lanes is too short for LLVM's vectorized loop, which takes
    32 floats a trip: hence lanes across super-blocks.)"""
    lo = local_block(xt, 64)
    hi = local_block(xt, 64)
    sum_w = local_block(xt, 64)
    sum_x = local_block(xt, 64)
    scale = local_block(xt, 64)
    best = local_block(xt, 64)
    iscale = local_block(xt, 64)
    sum_l = local_block(xt, 64)
    sum_l2 = local_block(xt, 64)
    sum_xl = local_block(xt, 64)
    t_scale = local_block(xt, 64)
    t_min = local_block(xt, 64)
    err = local_block(xt, 64)
    took = local_block(xt, 64)
    laux = local_block(L, 2048)
    zero = np.float32(0.0)
    fnmax = np.float32(nmax)
    top = np.int32(nmax)
    for k in range(nk):
        lo[k] = xt[k]
        hi[k] = xt[k]
        sum_w[k] = wt[k]
        sum_x[k] = wt[k] * xt[k]
    for i in range(1, 32):
        for k in range(nk):
            v = xt[nk * i + k]
            w = wt[nk * i + k]
            lo[k] = v if v < lo[k] else lo[k]
            hi[k] = v if v > hi[k] else hi[k]
            sum_w[k] += w
            sum_x[k] += w * v
    for k in range(nk):
        lo[k] = zero if lo[k] > 0 else lo[k]
        mins[k] = -lo[k]  # (a flat lane's result: C returns early when max == min)
        scales[k] = zero if hi[k] == lo[k] else np.float32(1.0)  # 0: a flat lane
        iscale[k] = fnmax / (hi[k] - lo[k])
        scale[k] = np.float32(1.0) / iscale[k]
        best[k] = zero
    for i in range(32):
        for k in range(nk):
            v = xt[nk * i + k]
            l = max(np.int32(0), min(top, nearest_int32(iscale[k] * (v - lo[k]))))
            L[nk * i + k] = l
            diff = scale[k] * np.float32(l) + lo[k] - v
            best[k] += wt[nk * i + k] * (diff * diff)
    for step in range(nstep + 1):
        for k in range(nk):
            iscale[k] = (rmin + rdelta * np.float32(step) + fnmax) / (hi[k] - lo[k])
            sum_l[k] = zero
            sum_l2[k] = zero
            sum_xl[k] = zero
            err[k] = zero
        for i in range(32):
            for k in range(nk):
                v = xt[nk * i + k]
                w = wt[nk * i + k]
                l = max(np.int32(0), min(top, nearest_int32(iscale[k] * (v - lo[k]))))
                laux[nk * i + k] = l
                fl = np.float32(l)
                sum_l[k] += w * fl
                sum_l2[k] += w * fl * fl
                sum_xl[k] += w * fl * v
        for k in range(nk):
            D = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k]
            ts = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / D
            tm = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / D
            positive = tm > 0
            t_min[k] = zero if positive else tm
            t_scale[k] = sum_xl[k] / sum_l2[k] if positive else ts
            sum_l[k] = D  # (kept for the choice below)
        for i in range(32):
            for k in range(nk):
                diff = t_scale[k] * np.float32(laux[nk * i + k]) + t_min[k] - xt[nk * i + k]
                err[k] += wt[nk * i + k] * (diff * diff)
        for k in range(nk):  # C: if (D > 0 && cur_error < best_error) take this step
            take = (sum_l[k] > 0) & (err[k] < best[k])
            best[k] = err[k] if take else best[k]
            scale[k] = t_scale[k] if take else scale[k]
            lo[k] = t_min[k] if take else lo[k]
            took[k] = np.float32(1.0) if take else zero
        for i in range(32):
            for k in range(nk):
                L[nk * i + k] = laux[nk * i + k] if took[k] != 0 else L[nk * i + k]
    for k in range(nk):
        flat = scales[k] == 0
        mins[k] = mins[k] if flat else -lo[k]
        scales[k] = zero if flat else scale[k]
        took[k] = np.float32(1.0) if flat else zero
    for i in range(32):
        for k in range(nk):
            L[nk * i + k] = 0 if took[k] != 0 else L[nk * i + k]


@njit(cache=True, nogil=True, error_model="numpy")
def make_qx_lanes(xt, L, nmax, nk, scales):
    """``make_qx_quants(16, nmax, x_k, L_k, rmse_type=1, qw=NULL)`` for ``nk`` sub-blocks
    ``k`` at once (64 at most: the 16 sub-blocks of up to 4 q6_K super-blocks), as
    ``make_qkx2_lanes``: element ``i`` of sub-block ``k`` at ``nk * i + k`` in ``xt`` and
    ``L`` (``l + nmax``), the scales into ``scales``; each lane C's algorithm, its sums
    in C's order, C's branches as per-lane selects."""
    big = local_block(xt, 64)
    amax = local_block(xt, 64)
    iscale = local_block(xt, 64)
    slx = local_block(xt, 64)
    sl2 = local_block(xt, 64)
    scale = local_block(xt, 64)
    best = local_block(xt, 64)
    took = local_block(xt, 64)
    zero = np.float32(0.0)
    fnmax = np.float32(nmax)
    lo_l, hi_l = np.int32(-nmax), np.int32(nmax - 1)
    for k in range(nk):
        big[k] = zero
        amax[k] = zero
    for i in range(16):
        for k in range(nk):
            v = xt[nk * i + k]
            ax = abs(v)
            more = ax > amax[k]
            amax[k] = ax if more else amax[k]
            big[k] = v if more else big[k]
    for k in range(nk):
        iscale[k] = -fnmax / big[k]
        slx[k] = zero
        sl2[k] = zero
    for i in range(16):
        for k in range(nk):
            v = xt[nk * i + k]
            l = max(lo_l, min(hi_l, nearest_int32(iscale[k] * v)))
            L[nk * i + k] = l + nmax
            w = v * v
            fl = np.float32(l)
            slx[k] += w * v * fl
            sl2[k] += w * fl * fl
    for k in range(nk):
        scale[k] = slx[k] / sl2[k] if sl2[k] != 0 else zero
        best[k] = scale[k] * slx[k]
    for c in range(18):  # is = -9..-1, 1..9
        step = c - 9 if c < 9 else c - 8
        for k in range(nk):
            iscale[k] = -(fnmax + np.float32(0.1) * np.float32(step)) / big[k]
            slx[k] = zero
            sl2[k] = zero
        for i in range(16):
            for k in range(nk):
                v = xt[nk * i + k]
                fl = np.float32(max(lo_l, min(hi_l, nearest_int32(iscale[k] * v))))
                w = v * v
                slx[k] += w * v * fl
                sl2[k] += w * fl * fl
        for k in range(nk):  # C: if (suml2 > 0 && sumlx*sumlx > best*suml2) take it
            take = (sl2[k] > 0) & (slx[k] * slx[k] > best[k] * sl2[k])
            s = slx[k] / sl2[k]
            scale[k] = s if take else scale[k]
            best[k] = s * slx[k] if take else best[k]
            took[k] = np.float32(1.0) if take else zero
        for i in range(16):
            for k in range(nk):
                l = max(lo_l, min(hi_l, nearest_int32(iscale[k] * xt[nk * i + k])))
                L[nk * i + k] = l + nmax if took[k] != 0 else L[nk * i + k]
    for k in range(nk):  # GROUP_MAX_EPS: an all-zero sub-block
        flat = amax[k] < np.float32(1e-15)
        scales[k] = zero if flat else scale[k]
        took[k] = np.float32(1.0) if flat else zero
    for i in range(16):
        for k in range(nk):
            L[nk * i + k] = 0 if took[k] != 0 else L[nk * i + k]
