"""The scale searches of llama.cpp's 2- and 3-bit K-quants (CPU): ``make_qkx2_quants``
as q2_K calls it (16 elements, mean absolute error) and ``make_q3_quants``, of
``ggml/src/ggml-quants.c`` (ggml, MIT licence, Copyright (c) 2023-2024 The ggml
authors), and the last code pass of both, ported to give C's bits (see
``fastq.kernels.cpu.blocks.kquant.low``) with independent sub-blocks of 16 side by
side in vector lanes: element ``i`` of lane ``k`` at ``nk * i + k``, at most 64 lanes
(q3_K's search: 128).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ...word import local_block
from .. import lanes as V
from .search import nearest_int32


@njit(cache=True, nogil=True, error_model="numpy")
def make_qkx2_mad_lanes(xt, wt, L, nmax, rmin, rdelta, nstep, scales, mins, nk):
    """``make_qkx2_quants(16, nmax, x_k, w_k, L_k, &mins[k], Laux, rmin, rdelta, nstep,
    use_mad=true)`` for ``nk`` (at most 64) sub-blocks ``k`` at once: element ``i`` of
    sub-block ``k`` at ``nk * i + k`` in ``xt``, ``wt`` and ``L``.  The error of a
    candidate is ``sum(w * |scale * l + min - x|)``; otherwise as
    ``search.make_qkx2_lanes`` (which is the squared-error, 32-element one)."""
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


@njit(cache=True, nogil=True, inline="always")
def _q3_move(v, l, slx, sl2, moved, lo, hi):
    """One element of a ``make_q3_quants`` pass on 16 lanes (``l`` its code, ``slx``,
    ``sl2`` the lanes' ``sum(w x l)``, ``sum(w l^2)``, ``w = x^2``), in C's order and
    arithmetic: the others' sums ``slx - (w x) l``, ``sl2 - (w l) l``, the new code
    ``clamp(nearest_int(x * sl2' / slx'), lo, hi)``, taken where ``slx' > 0``, it differs,
    and ``sum^2 / sum_l2`` grows.  Returns the code, the sums and ``moved`` (1 in the
    lanes that took a move)."""
    zero = V.splat(np.float32(0.0))
    w = V.mul(v, v)
    wv = V.mul(w, v)
    s_lx = V.sub(slx, V.mul(wv, l))
    s_l2 = V.sub(sl2, V.mul(V.mul(w, l), l))
    new = V.nearest_int_clamped(V.div(V.mul(v, s_l2), s_lx), lo, hi)
    n_lx = V.add(s_lx, V.mul(wv, new))
    n_l2 = V.add(s_l2, V.mul(V.mul(w, new), new))
    # take = (slx' > 0) & (new != l) & (sl2' > 0) & (slx'^2 * sl2 > slx^2 * sl2'), as
    # selects of the compare's operands (a -inf left side or +inf right side fails it):
    # ands of 16-lane masks compile to packs and unpacks of bytes on AVX2
    inf = V.splat(np.float32(np.inf))
    same = V.eq(new, l)
    gate = V.gt(V.select(same, zero, s_lx), zero)
    left = V.select(gate, V.mul(V.mul(n_lx, n_lx), sl2), V.sub(zero, inf))
    right = V.select(V.gt(n_l2, zero), V.mul(V.mul(slx, slx), n_l2), inf)
    take = V.gt(left, right)
    # (the code as ``l + (new - l)``, exact for these small integers: stored back where
    # ``l`` was loaded from, a plain select becomes a masked store, microcoded on AMD)
    code = V.add(l, V.select(take, V.sub(new, l), zero))
    return (code, V.select(take, n_lx, slx), V.select(take, n_l2, sl2),
            V.select(take, V.splat(np.float32(1.0)), moved))


@njit(cache=True, nogil=True, inline="always")
def _q3_start(xt, fl, nmax, nk, g, sums, amaxes):
    """The start of ``make_q3_quants`` on the 16 lanes ``g..g + 16``: each lane's
    largest magnitude (into ``amaxes``), its codes from ``-nmax / max`` (into ``fl``, as
    float, at ``nk * i + g``) and their ``sum(w x l)``, ``sum(w l^2)`` (``sums[g]``,
    ``sums[128 + g]``)."""
    zero = V.splat(np.float32(0.0))
    amax, big = zero, zero
    for i in range(16):
        v = V.load(xt, nk * i + g)
        ax = V.fabs(v)
        more = V.gt(ax, amax)
        amax = V.select(more, ax, amax)
        big = V.select(more, v, big)
    V.store(amaxes, g, amax)
    iscale = V.div(V.splat(np.float32(-nmax)), big)
    slx, sl2 = zero, zero
    for i in range(16):
        v = V.load(xt, nk * i + g)
        l = V.nearest_int_clamped(V.mul(iscale, v), -nmax, nmax - 1)
        V.store(fl, nk * i + g, l)
        w = V.mul(v, v)
        slx = V.add(slx, V.mul(V.mul(w, v), l))
        sl2 = V.add(sl2, V.mul(V.mul(w, l), l))
    V.store(sums, g, slx)
    V.store(sums, 128 + g, sl2)


@njit(cache=True, nogil=True, inline="always")
def _q3_passes(xt, fl, nmax, nk, sums, moves, g0, count, passes):
    """Up to ``passes`` of C's passes of code moves on the lanes of the ``count`` (1 to
    4) 16-lane groups from lane ``g0``, their sums in registers, their element steps
    alternating: the step of a group is one dependency chain (a division, a rounding
    and a compare per element, some 80 cycles), and four independent ones keep the
    cores' units busy.  C stops a sub-block at its first pass that changes nothing, and
    a pass after that would change nothing either (the same state): the lanes run
    passes until none of them moves.  ``moves`` gets each lane's flag (1: moved) of
    the last pass run."""
    zero = V.splat(np.float32(0.0))
    lo, hi = -nmax, nmax - 1
    ga = g0
    gb = g0 + 16 if count > 1 else g0
    gc = g0 + 32 if count > 2 else g0
    gd = g0 + 48 if count > 3 else g0
    slx_a, sl2_a = V.load(sums, ga), V.load(sums, 128 + ga)
    slx_b, sl2_b = V.load(sums, gb), V.load(sums, 128 + gb)
    slx_c, sl2_c = V.load(sums, gc), V.load(sums, 128 + gc)
    slx_d, sl2_d = V.load(sums, gd), V.load(sums, 128 + gd)
    moved_a, moved_b, moved_c, moved_d = zero, zero, zero, zero
    for _ in range(passes):
        moved_a, moved_b, moved_c, moved_d = zero, zero, zero, zero
        for i in range(16):
            r = nk * i
            la, slx_a, sl2_a, moved_a = _q3_move(V.load(xt, r + ga), V.load(fl, r + ga),
                                                 slx_a, sl2_a, moved_a, lo, hi)
            V.store(fl, r + ga, la)
            if count > 1:
                lb, slx_b, sl2_b, moved_b = _q3_move(V.load(xt, r + gb), V.load(fl, r + gb),
                                                     slx_b, sl2_b, moved_b, lo, hi)
                V.store(fl, r + gb, lb)
            if count > 2:
                lc, slx_c, sl2_c, moved_c = _q3_move(V.load(xt, r + gc), V.load(fl, r + gc),
                                                     slx_c, sl2_c, moved_c, lo, hi)
                V.store(fl, r + gc, lc)
            if count > 3:
                ld, slx_d, sl2_d, moved_d = _q3_move(V.load(xt, r + gd), V.load(fl, r + gd),
                                                     slx_d, sl2_d, moved_d, lo, hi)
                V.store(fl, r + gd, ld)
        if V.every(V.eq(V.add(V.add(moved_a, moved_b), V.add(moved_c, moved_d)), zero)):
            break
    V.store(sums, ga, slx_a)
    V.store(sums, 128 + ga, sl2_a)
    V.store(moves, ga, moved_a)
    if count > 1:
        V.store(sums, gb, slx_b)
        V.store(sums, 128 + gb, sl2_b)
        V.store(moves, gb, moved_b)
    if count > 2:
        V.store(sums, gc, slx_c)
        V.store(sums, 128 + gc, sl2_c)
        V.store(moves, gc, moved_c)
    if count > 3:
        V.store(sums, gd, slx_d)
        V.store(sums, 128 + gd, sl2_d)
        V.store(moves, gd, moved_d)


@njit(cache=True, nogil=True, inline="always")
def _q3_search(xt, fl, nmax, nk, sums):
    """C's passes of code moves for the ``nk`` lanes.  Four in five sub-blocks (Gaussian
    data) settle in their first pass, yet a group of 16 would run as many passes as its
    slowest lane: after the first pass, the lanes that moved are gathered (their
    elements, codes and sums; zero lanes pad the last group, where no move is ever
    taken: ``slx > 0`` fails) and only they run the (up to 4) passes after it."""
    moves = local_block(xt, 128)
    for g0 in range(0, nk, 64):
        _q3_passes(xt, fl, nmax, nk, sums, moves, g0, min(4, (nk - g0) // 16), 1)
    idx = local_block(moves, 128)  # (float32 lane numbers: exact)
    na = 0
    for k in range(nk):
        if moves[k] != 0:
            idx[na] = k
            na += 1
    if na == 0:
        return
    nc = (na + 15) // 16 * 16
    cx, cf = local_block(xt, 2048), local_block(xt, 2048)
    csums = local_block(xt, 256)
    zero = V.splat(np.float32(0.0))
    last = nc - 16  # (the padding lanes: in the last group)
    V.store(csums, last, zero)
    V.store(csums, 128 + last, zero)
    for i in range(16):
        V.store(cx, nc * i + last, zero)
        V.store(cf, nc * i + last, zero)
    for a in range(na):
        k = np.uint64(idx[a])
        csums[a] = sums[k]
        csums[128 + a] = sums[128 + k]
        for i in range(16):
            cx[nc * i + a] = xt[nk * i + k]
            cf[nc * i + a] = fl[nk * i + k]
    for g0 in range(0, nc, 64):
        _q3_passes(cx, cf, nmax, nc, csums, moves, g0, min(4, (nc - g0) // 16), 4)
    for a in range(na):
        k = np.uint64(idx[a])
        sums[k], sums[128 + k] = csums[a], csums[128 + a]
        for i in range(16):
            fl[nk * i + k] = cf[nc * i + a]


@njit(cache=True, nogil=True, error_model="numpy")
def make_q3_lanes(xt, L, nmax, nk, scales):
    """``make_q3_quants(16, nmax, x_k, L_k, do_rmse=true)`` for ``nk`` (a multiple of 16,
    at most 128) sub-blocks ``k`` at once, element ``i`` of sub-block ``k`` at ``nk * i +
    k`` in ``xt`` and ``L`` (``l + nmax``; 0 for an all-zero sub-block), the scales into
    ``scales``; 16 lanes a vector (``_q3_start``, ``_q3_search``)."""
    fl = local_block(xt, 2048)
    sums, amaxes = local_block(xt, 256), local_block(xt, 128)
    for g in range(0, nk, 16):
        _q3_start(xt, fl, nmax, nk, g, sums, amaxes)
    _q3_search(xt, fl, nmax, nk, sums)
    zero = V.splat(np.float32(0.0))
    off = V.splat(np.float32(nmax))
    for g in range(0, nk, 16):
        # GROUP_MAX_EPS: an all-zero sub-block (C returns before the search) has scale 0
        # and codes 0
        flat = V.lt(V.load(amaxes, g), V.splat(np.float32(1e-15)))
        slx, sl2 = V.load(sums, g), V.load(sums, 128 + g)
        scale = V.select(V.gt(sl2, zero), V.div(slx, sl2), zero)
        V.store(scales, g, V.select(flat, zero, scale))
        for i in range(16):
            code = V.add(V.load(fl, nk * i + g), off)
            V.store_bytes(L, nk * i + g, V.select(flat, zero, code))


@intrinsic
def _load_codes(typingctx, a, i):
    """``a[i:i + 16]`` of a uint8 array as 16 float32 lanes (a lanes.py-style load)."""
    if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8 \
            and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            vb = ir.VectorType(ir.IntType(8), V.WIDTH)
            b = builder.load(builder.bitcast(builder.gep(data, [args[1]]), vb.as_pointer()),
                             align=1)
            return builder.uitofp(b, ir.VectorType(ir.FloatType(), V.WIDTH))
        return V.vec(a, i), codegen
    return None


@njit(cache=True, nogil=True, error_model="numpy")
def requantize_lanes(xt, L, dl, ml, lo, hi, offset, nk):
    """C's last code pass, lane ``k`` a sub-block: where ``dl[k] != 0``, ``L = clamp(
    nearest_int((x + ml[k]) / dl[k]), lo, hi) + offset`` (q2_K ``(x + dm) / d`` in 0..3;
    q3_K ``x / d`` in -4..3, plus 4, with ``ml = 0``: ``x + 0`` is ``x`` but for the sign
    of a zero, which rounds to code 0 either way); elsewhere the search's codes stay.
    16 lanes a vector (``nk`` a multiple of 16)."""
    zero, off = V.splat(np.float32(0.0)), V.splat(np.float32(offset))
    for g in range(0, nk, 16):
        d, m = V.load(dl, g), V.load(ml, g)
        keep = V.eq(d, zero)  # (C: if (!d) continue; a NaN d goes on)
        for i in range(16):
            r = V.div(V.add(V.load(xt, nk * i + g), m), d)
            code = V.add(V.nearest_int_clamped(r, lo, hi), off)
            V.store_bytes(L, nk * i + g, V.select(keep, _load_codes(L, nk * i + g), code))
