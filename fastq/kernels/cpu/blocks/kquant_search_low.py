"""The scale searches of llama.cpp's 2- and 3-bit K-quants (CPU): ``make_qkx2_quants``
as q2_K calls it (16 elements, mean absolute error) and ``make_q3_quants``, of
``ggml/src/ggml-quants.c`` (ggml, MIT licence, Copyright (c) 2023-2024 The ggml
authors), and the last code pass of both, ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquants_low``) with independent sub-blocks of 16 side by
side in vector lanes: element ``i`` of lane ``k`` at ``nk * i + k``, at most 64 lanes.
"""
import numpy as np
from numba import njit

from ..word import add, local_block, sub
from .kquant_search import nearest_int32


@njit(cache=True, nogil=True, error_model="numpy")
def make_qkx2_mad_lanes(xt, wt, L, nmax, rmin, rdelta, nstep, scales, mins, nk):
    """``make_qkx2_quants(16, nmax, x_k, w_k, L_k, &mins[k], Laux, rmin, rdelta, nstep,
    use_mad=true)`` for ``nk`` (at most 64) sub-blocks ``k`` at once: element ``i`` of
    sub-block ``k`` at ``nk * i + k`` in ``xt``, ``wt`` and ``L``.  The error of a
    candidate is ``sum(w * |scale * l + min - x|)``; otherwise as
    ``kquant_search.make_qkx2_lanes`` (which is the squared-error, 32-element one)."""
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
    laux = local_block(L, 1024)
    zero = np.float32(0.0)
    fnmax = np.float32(nmax)
    top = np.int32(nmax)
    for k in range(nk):
        lo[k] = xt[k]
        hi[k] = xt[k]
        sum_w[k] = wt[k]
        sum_x[k] = wt[k] * xt[k]
    for i in range(1, 16):
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
    for i in range(16):
        for k in range(nk):
            v = xt[nk * i + k]
            l = max(np.int32(0), min(top, nearest_int32(iscale[k] * (v - lo[k]))))
            L[nk * i + k] = l
            diff = scale[k] * np.float32(l) + lo[k] - v
            best[k] += wt[nk * i + k] * abs(diff)
    for step in range(nstep + 1):
        for k in range(nk):
            iscale[k] = (rmin + rdelta * np.float32(step) + fnmax) / (hi[k] - lo[k])
            sum_l[k] = zero
            sum_l2[k] = zero
            sum_xl[k] = zero
            err[k] = zero
        for i in range(16):
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
        for i in range(16):
            for k in range(nk):
                diff = t_scale[k] * np.float32(laux[nk * i + k]) + t_min[k] - xt[nk * i + k]
                err[k] += wt[nk * i + k] * abs(diff)
        for k in range(nk):  # C: if (D > 0 && cur_error < best_error) take this step
            take = (sum_l[k] > 0) & (err[k] < best[k])
            best[k] = err[k] if take else best[k]
            scale[k] = t_scale[k] if take else scale[k]
            lo[k] = t_min[k] if take else lo[k]
            took[k] = np.float32(1.0) if take else zero
        for i in range(16):
            for k in range(nk):
                L[nk * i + k] = laux[nk * i + k] if took[k] != 0 else L[nk * i + k]
    for k in range(nk):
        flat = scales[k] == 0
        mins[k] = mins[k] if flat else -lo[k]
        scales[k] = zero if flat else scale[k]
        took[k] = np.float32(1.0) if flat else zero
    for i in range(16):
        for k in range(nk):
            L[nk * i + k] = 0 if took[k] != 0 else L[nk * i + k]


@njit(cache=True, nogil=True, error_model="numpy")
def _q3_pass(xt, L, slx, sl2, moved, nmax, nk):
    """One pass of ``make_q3_quants``' code moves over ``nk`` lanes (element ``i`` of lane
    ``k`` at ``nk * i + k``; ``L`` holds ``l + nmax``, ``slx``/``sl2`` each lane's
    ``sum(w x l)``/``sum(w l^2)``, ``w = x^2``); ``moved[k]`` says whether lane ``k``
    changed; returns how many moves were taken.  Each element in C's order and
    arithmetic: ``slx - w x l`` (the others' sums), the new code ``nearest_int(x * sl2 /
    slx)``, taken where ``slx > 0``, it differs, and ``sum^2 / sum_l2`` grows."""
    lo_l, hi_l, off = np.int32(-nmax), np.int32(nmax - 1), np.int32(nmax)
    one, none = np.int32(1), np.int32(0)
    changed = np.int32(0)
    for k in range(nk):
        moved[k] = np.float32(0.0)
    for i in range(16):
        for k in range(nk):
            v = xt[nk * i + k]
            w = v * v
            li = sub(np.int32(L[nk * i + k]), off)
            fli = np.float32(li)
            s_lx = slx[k] - w * v * fli
            s_l2 = sl2[k] - w * fli * fli
            new_l = max(lo_l, min(hi_l, nearest_int32(v * s_l2 / s_lx)))
            fnew = np.float32(new_l)
            n_lx = s_lx + w * v * fnew
            n_l2 = s_l2 + w * fnew * fnew
            # C: if (slx > 0) ... if (new_l != L[i]) ... if (sl2 > 0 && better) take
            take = ((s_lx > 0) & (new_l != li) & (n_l2 > 0)
                    & (n_lx * n_lx * sl2[k] > slx[k] * slx[k] * n_l2))
            L[nk * i + k] = add(new_l, off) if take else L[nk * i + k]
            slx[k] = n_lx if take else slx[k]
            sl2[k] = n_l2 if take else sl2[k]
            moved[k] = np.float32(1.0) if take else moved[k]
            changed = add(changed, one if take else none)
    return changed


@njit(cache=True, nogil=True, error_model="numpy")
def make_q3_lanes(xt, L, nmax, nk, scales):
    """``make_q3_quants(16, nmax, x_k, L_k, do_rmse=true)`` for ``nk`` (at most 64)
    sub-blocks ``k`` at once, element ``i`` of sub-block ``k`` at ``nk * i + k`` in ``xt``
    and ``L`` (``l + nmax``; 0 for an all-zero sub-block), the scales into ``scales``.
    (C's passes: ``_q3_pass``.)"""
    big = local_block(xt, 64)
    amax = local_block(xt, 64)
    iscale = local_block(xt, 64)
    slx = local_block(xt, 64)
    sl2 = local_block(xt, 64)
    took = local_block(xt, 64)
    zero = np.float32(0.0)
    # (int32 throughout, word.add/sub: an int64 converts to float32 a lane at a time)
    lo_l, hi_l, off = np.int32(-nmax), np.int32(nmax - 1), np.int32(nmax)
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
        iscale[k] = -np.float32(nmax) / big[k]
        slx[k] = zero
        sl2[k] = zero
    for i in range(16):
        for k in range(nk):
            v = xt[nk * i + k]
            l = max(lo_l, min(hi_l, nearest_int32(iscale[k] * v)))
            L[nk * i + k] = add(l, off)
            w = v * v
            fl = np.float32(l)
            slx[k] += w * v * fl
            sl2[k] += w * fl * fl
    # C stops at a sub-block's first pass that changes nothing, and a pass after that
    # would change nothing either: most sub-blocks settle in one pass, so the lanes that
    # still moved are gathered and only they run the (up to 4) passes after it
    moved = local_block(xt, 64)
    if _q3_pass(xt, L, slx, sl2, moved, nmax, nk):
        idx = local_block(L, 64)
        na = 0
        for k in range(nk):
            if moved[k] != 0:
                idx[na] = k
                na += 1
        cx, cl = local_block(xt, 1024), local_block(L, 1024)
        cslx, csl2 = local_block(xt, 64), local_block(xt, 64)
        for a in range(na):
            k = np.int64(idx[a])
            cslx[a], csl2[a] = slx[k], sl2[k]
            for i in range(16):
                cx[na * i + a] = xt[nk * i + k]
                cl[na * i + a] = L[nk * i + k]
        for _ in range(4):
            if not _q3_pass(cx, cl, cslx, csl2, moved, nmax, na):
                break
        for a in range(na):
            k = np.int64(idx[a])
            slx[k], sl2[k] = cslx[a], csl2[a]
            for i in range(16):
                L[nk * i + k] = cl[na * i + a]
    for k in range(nk):  # GROUP_MAX_EPS: an all-zero sub-block (C returns before all this)
        flat = amax[k] < np.float32(1e-15)
        scales[k] = zero if flat or not sl2[k] > 0 else slx[k] / sl2[k]
        took[k] = np.float32(1.0) if flat else zero
    for i in range(16):
        for k in range(nk):
            L[nk * i + k] = 0 if took[k] != 0 else L[nk * i + k]


@njit(cache=True, nogil=True, error_model="numpy")
def requantize_lanes(xt, L, dl, ml, lo, hi, offset, nk):
    """C's last code pass, lane ``k`` a sub-block: where ``dl[k] != 0``, ``L = clamp(
    nearest_int((x + ml[k]) / dl[k]), lo, hi) + offset`` (q2_K ``(x + dm) / d`` in 0..3;
    q3_K ``x / d`` in -4..3, plus 4, with ``ml = 0``: ``x + 0`` is ``x`` but for the sign
    of a zero, which rounds to code 0 either way); elsewhere the search's codes stay.
    As lanes, the divisions run as vectors."""
    lo, hi, offset = np.int32(lo), np.int32(hi), np.int32(offset)
    ratio = local_block(xt, 64)
    for i in range(16):
        for k in range(nk):  # (the divisions alone in a loop: it vectorizes)
            ratio[k] = (xt[nk * i + k] + ml[k]) / dl[k]
        for k in range(nk):
            l = max(lo, min(hi, nearest_int32(ratio[k])))
            L[nk * i + k] = add(l, offset) if dl[k] != 0 else L[nk * i + k]
