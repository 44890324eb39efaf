"""The scale searches of llama.cpp's K-quants (CPU): ``nearest_int``, ``make_qkx2_quants``
and ``make_qx_quants`` of ``ggml/src/ggml-quants.c`` (ggml, MIT licence, Copyright (c)
2023-2024 The ggml authors), ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquants``) with their independent work side by side in
vector lanes: the 8 sub-blocks of a q4_K/q5_K super-block, the 18 candidate scales of
``make_qx_quants``.
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
def make_qkx2_x8(xt, wt, L, nmax, rmin, rdelta, nstep, scales, mins, nk):
    """``make_qkx2_quants(32, nmax, x_k, w_k, L_k, &mins[k], Laux, rmin, rdelta, nstep,
    use_mad=false)`` for the 8 sub-blocks ``k`` of a super-block at once, lane ``k``
    of each step: ``xt``, ``wt`` and ``L`` hold element ``i`` of sub-block ``k`` at
    ``nk * i + k``.  Each lane runs C's algorithm on its own, step for step, in float32
    and in C's order (its sums over the elements one after the other); C's branches
    become per-lane selects, so the 8 lanes run as one vector and give C's bits.
    ``nk`` (8) is an argument so that LLVM vectorizes the lane loops rather than unroll
    them into scalar code."""
    lo = local_block(xt, 8)
    hi = local_block(xt, 8)
    sum_w = local_block(xt, 8)
    sum_x = local_block(xt, 8)
    scale = local_block(xt, 8)
    best = local_block(xt, 8)
    iscale = local_block(xt, 8)
    sum_l = local_block(xt, 8)
    sum_l2 = local_block(xt, 8)
    sum_xl = local_block(xt, 8)
    t_scale = local_block(xt, 8)
    t_min = local_block(xt, 8)
    err = local_block(xt, 8)
    took = local_block(xt, 8)
    laux = local_block(L, 256)
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
def make_qx(x, i0, n, nmax, L, l0, lanes):
    """``make_qx_quants(n, nmax, x + i0, L + l0, rmse_type=1, qw=NULL)``; returns the
    scale (``L`` holds ``l + nmax``).  The 18 candidate scales do not depend on each
    other: their sums run side by side in lanes (each in C's order), then C's
    sequential choice runs over them."""
    big = np.float32(0.0)
    amax = np.float32(0.0)
    for i in range(n):
        ax = abs(x[i0 + i])
        if ax > amax:
            amax = ax
            big = x[i0 + i]
    if amax < np.float32(1e-15):  # GROUP_MAX_EPS
        for i in range(n):
            L[l0 + i] = 0
        return np.float32(0.0)
    fnmax = np.float32(nmax)
    iscale = -fnmax / big
    sumlx = np.float32(0.0)
    suml2 = np.float32(0.0)
    for i in range(n):
        v = x[i0 + i]
        l = clamp(nearest_int(iscale * v), -nmax, nmax - 1)
        L[l0 + i] = l + nmax
        w = v * v
        fl = np.float32(l)
        sumlx += w * v * fl
        suml2 += w * fl * fl
    scale = sumlx / suml2 if suml2 != 0 else np.float32(0.0)
    best = scale * sumlx
    isc, slx, sl2 = lanes[0], lanes[1], lanes[2]
    for c in range(18):  # is = -9..-1, 1..9
        step = c - 9 if c < 9 else c - 8
        isc[c] = -(fnmax + np.float32(0.1) * np.float32(step)) / big
        slx[c] = np.float32(0.0)
        sl2[c] = np.float32(0.0)
    lo_l, hi_l = np.int32(-nmax), np.int32(nmax - 1)
    for i in range(n):
        v = x[i0 + i]
        w = v * v
        wv = w * v
        for c in range(18):
            fl = np.float32(max(lo_l, min(hi_l, nearest_int32(isc[c] * v))))
            slx[c] += wv * fl
            sl2[c] += w * fl * fl
    for c in range(18):
        if sl2[c] > 0 and slx[c] * slx[c] > best * sl2[c]:
            for i in range(n):
                L[l0 + i] = nmax + clamp(nearest_int(isc[c] * x[i0 + i]), -nmax, nmax - 1)
            scale = slx[c] / sl2[c]
            best = scale * slx[c]
    return scale
