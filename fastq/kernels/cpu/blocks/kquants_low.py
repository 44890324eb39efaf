"""GGML K-quants of 2 and 3 bits (CPU): q2_K and q3_K, super-blocks of 256 elements in
16 sub-blocks of 16.

Backend interface (as ``fastq.kernels.cpu.blocks.kquants``): ``quantize(x, kind, out)
-> (nan_blocks, overflow_blocks)``, ``dequantize(data, kind, out)``, ``codes(data,
kind, out)``; ``kind`` 0 q2_K, 1 q3_K.

A port of llama.cpp's reference quantizer (``quantize_row_q2_K_ref`` and
``quantize_row_q3_K_ref`` with ``make_qkx2_quants``, ``make_q3_quants`` and
``nearest_int`` in ``ggml/src/ggml-quants.c``; ggml, MIT licence, Copyright (c)
2023-2024 The ggml authors), no importance matrix, written to give the same bytes as
``fastq.kernels.cpu.blocks.kquants`` does for q4_K..q6_K: float32 in C's order, no FMA,
``nearest_int`` by its magic-number trick, C's integer conversions (low byte).

* q2_K (84 bytes: 16 scale bytes, 64 code bytes, float16 ``d`` and ``dmin``): per
  sub-block ``make_qkx2_quants(16, nmax=3, weights |x|, rmin=-0.5, rdelta=0.1, nstep=15,
  use_mad=true)``: the fit ``x ~ scale * l - min`` minimizing ``sum |x| * |error|`` over
  the candidate inverse scales ``(rmin + rdelta * is + 3) / (max - min)``; scale and min
  as 4-bit multiples of ``d = max_scale / 15`` and ``dmin = max_min / 15`` (low and
  high nibble of one byte); codes ``clamp(nearest_int((x + dmin * m) / (d * sc)), 0, 3)``.
* q3_K (110 bytes: 32 high-bit mask bytes, 64 bytes of low 2 bits, 12 bytes of 6-bit
  scales, float16 ``d``): per sub-block ``make_q3_quants(16, nmax=4, do_rmse=true)``
  (codes from ``-4 / max``, then up to 5 passes moving one code at a time to
  ``nearest_int(x * sum(w l^2) / sum(w x l))`` with the others' sums, weights ``x^2``,
  while that raises ``sum(w x l)^2 / sum(w l^2)``); scales as signed 6-bit multiples of
  ``d = -max_scale / 32``; codes ``clamp(nearest_int(x / (d * sc)), -4, 3) + 4``.

The independent sub-blocks of up to 4 super-blocks (64) are searched side by side as
vector lanes, each lane C's algorithm step for step, C's branches as per-lane selects.
"""
import numpy as np
from numba import njit, prange

from ....runtime.threads import parallel_region
from ..parallel import n_chunks
from ..word import add, as_bits, band, local_block, shl, shr, sub, unmanaged
from .ggml import get_half, half_bits, put_half
from .kquant_search import clamp, nearest_int, nearest_int32


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of a super-block: q2_K 84, q3_K 110."""
    return 84 if kind == 0 else 110


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
def _q2_scales(scales, mins, s0, out, o, dl, ml):
    """q2_K's scale bytes and float16 ``d``/``dmin`` of one super-block from its
    sub-blocks' ``make_qkx2_quants`` results ``scales[s0:s0+16]``, ``mins[s0:s0+16]``;
    each sub-block's ``d * sc`` and ``dmin * m`` into ``dl``, ``ml`` (same index).
    Returns whether d or dmin is not a finite float16."""
    max_scale = np.float32(0.0)
    max_min = np.float32(0.0)
    for j in range(16):
        if scales[s0 + j] > max_scale:
            max_scale = scales[s0 + j]
        if mins[s0 + j] > max_min:
            max_min = mins[s0 + j]
    q4scale = np.float32(15.0)
    dh = mh = 0
    for j in range(16):
        out[o + j] = 0
    if max_scale > 0:
        iscale = q4scale / max_scale
        for j in range(16):
            out[o + j] = nearest_int(iscale * scales[s0 + j]) & 0xFF
        dh = half_bits(max_scale / q4scale)
    if max_min > 0:
        iscale = q4scale / max_min
        for j in range(16):
            out[o + j] |= (nearest_int(iscale * mins[s0 + j]) << 4) & 0xFF
        mh = half_bits(max_min / q4scale)
    put_half(out, o + 80, dh)
    put_half(out, o + 82, mh)
    d_all = get_half(out, o + 80)
    m_all = get_half(out, o + 82)
    for j in range(16):
        dl[s0 + j] = d_all * np.float32(np.int64(out[o + j]) & 0xF)
        ml[s0 + j] = m_all * np.float32(np.int64(out[o + j]) >> 4)
    return (dh & 0x7C00) == 0x7C00 or (mh & 0x7C00) == 0x7C00


@njit(cache=True, nogil=True, error_model="numpy")
def _q3_scales(scales, s0, out, o, dl, ml):
    """q3_K's 12 scale bytes and float16 ``d`` of one super-block from its sub-blocks'
    ``make_q3_quants`` scales ``scales[s0:s0+16]``; each sub-block's ``d * sc`` into
    ``dl`` and 0 into ``ml``.  Returns whether d is not a finite float16, or a
    sub-block's scale is not finite (C's sums of ``x^2 * x * l`` overflowed, from about
    1e12 up: C then drops the sub-block and may write d = 0)."""
    max_scale = np.float32(0.0)
    amax = np.float32(0.0)
    lost = False
    for j in range(16):
        a = abs(scales[s0 + j])
        lost |= not a < np.inf
        if a > amax:
            amax = a
            max_scale = scales[s0 + j]
    sb = o + 96
    for j in range(12):
        out[sb + j] = 0
    dh = 0
    if max_scale != 0:
        iscale = np.float32(-32.0) / max_scale
        for j in range(16):
            l = nearest_int(iscale * scales[s0 + j])
            l = clamp(np.int64(np.int8(l & 0xFF)), -32, 31) + 32  # (C's int -> int8_t)
            if j < 8:
                out[sb + j] = l & 0xF
            else:
                out[sb + j - 8] |= (l & 0xF) << 4
            out[sb + 8 + j % 4] |= (l >> 4) << (2 * (j // 4))
        dh = half_bits(np.float32(1.0) / iscale)
    put_half(out, o + 108, dh)
    d_all = get_half(out, o + 108)
    for j in range(16):
        dl[s0 + j] = d_all * np.float32(_q3_scale(out, sb, j))
        ml[s0 + j] = np.float32(0.0)
    return (dh & 0x7C00) == 0x7C00 or lost


@njit(cache=True, nogil=True, error_model="numpy")
def _requantize_lanes(xt, L, dl, ml, lo, hi, offset, nk):
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


@njit(cache=True, nogil=True, inline="always")
def _pack_q3_high(L, out, o):
    """q3_K's hmask: bit ``j // 32`` of byte ``j % 32`` is the high bit of code ``j``
    (C: ``if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }``); ``L`` keeps the low 2 bits."""
    for m in range(32):
        h = 0
        for bit in range(8):
            h |= (np.int64(L[32 * bit + m]) >> 2) << bit
        out[o + m] = h
    for j in range(256):
        L[j] &= 3


@njit(cache=True, nogil=True, inline="always")
def _pack_2bit(L, out, q):
    """``qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6``."""
    for j in range(0, 256, 128):
        for l in range(32):
            out[q + j // 4 + l] = (L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4)
                                   | (L[j + l + 96] << 6))


@njit(cache=True, nogil=True, inline="always")
def _q3_scale(data, sb, j):
    """The signed 6-bit scale of q3_K sub-block ``j`` (-32..31) from the 12 bytes at
    ``sb``: low 4 bits in byte ``j`` (``j - 8``, high nibble, from 8), high 2 bits at
    ``2 * (j // 4)`` of byte ``8 + j % 4``."""
    low = (np.int64(data[sb + j]) & 0xF) if j < 8 else (np.int64(data[sb + j - 8]) >> 4)
    return (low | (((np.int64(data[sb + 8 + j % 4]) >> (2 * (j // 4))) & 3) << 4)) - 32


@njit(cache=True, nogil=True, inline="always")
def _block_flags(x, i0):
    """Whether the super-block at ``i0`` holds a NaN, and (when it holds none) whether it
    holds an inf: from the largest magnitude's bits, one max reduction that vectorizes."""
    top = np.uint32(0)
    for i in range(256):
        top = max(top, band(as_bits(x[i0 + i]), np.uint32(0x7FFFFFFF)))
    return top > np.uint32(0x7F800000), top == np.uint32(0x7F800000)


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    """Super-blocks ``b0..b1``; returns (NaN blocks, overflowing blocks).  A block with
    an inf counts as overflowing even where C's arithmetic writes finite scales (q3_K's
    weights ``x^2`` turn inf into NaN sums, which lose the sub-block)."""
    x, out = unmanaged(x), unmanaged(out)
    L = local_block(out, 256)
    xt, wt, lt = local_block(x, 1024), local_block(x, 1024), local_block(out, 1024)
    g_scales, g_mins = local_block(x, 64), local_block(x, 64)
    dl, ml = local_block(x, 64), local_block(x, 64)
    nbytes = block_bytes(kind)
    nan = ovf = 0
    for g0 in range(b0, b1, 4):
        ns = min(4, b1 - g0)
        nk = 16 * ns
        for k in range(nk):  # lane k: sub-block k % 16 of super-block g0 + k // 16
            for i in range(16):
                v = x[g0 * 256 + 16 * k + i]
                xt[nk * i + k] = v
                wt[nk * i + k] = abs(v)
        if kind == 0:
            make_qkx2_mad_lanes(xt, wt, lt, 3, np.float32(-0.5), np.float32(0.1), 15,
                                g_scales, g_mins, nk)
        else:
            make_q3_lanes(xt, lt, 4, nk, g_scales)
        for s in range(ns):
            b = g0 + s
            if kind == 0:
                over = _q2_scales(g_scales, g_mins, 16 * s, out, b * nbytes, dl, ml)
            else:
                over = _q3_scales(g_scales, 16 * s, out, b * nbytes, dl, ml)
            bad, inf = _block_flags(x, b * 256)
            nan, ovf = nan + bad, ovf + ((over or inf) and not bad)
        if kind == 0:
            _requantize_lanes(xt, lt, dl, ml, 0, 3, 0, nk)
        else:
            _requantize_lanes(xt, lt, dl, ml, -4, 3, 4, nk)
        for s in range(ns):
            o = (g0 + s) * nbytes
            for j in range(16):
                for i in range(16):
                    L[16 * j + i] = lt[nk * i + 16 * s + j]
            if kind == 0:
                _pack_2bit(L, out, o + 16)
            else:
                _pack_q3_high(L, out, o)
                _pack_2bit(L, out, o + 32)
    return nan, ovf


@njit(parallel=True, cache=True, nogil=True)
def _quantize_parallel(x, kind, out, nchunks):
    nb = x.size // 256
    nan = ovf = 0
    for c in prange(nchunks):
        a, b = _quantize_blocks(x, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)
        nan += a
        ovf += b
    return nan, ovf


@njit(cache=True, nogil=True, error_model="numpy")
def _dequantize_blocks(data, kind, b0, b1, out):
    """``dequantize_row_q2_K`` / ``dequantize_row_q3_K``: q2_K ``(d * sc) * q - dmin *
    m``, q3_K ``(d * sc) * (q - 4)``, in float32 (``gguf.quants``' order).  Sub-block
    ``j`` (elements ``16 j..``) has its 2-bit codes at bit ``2 * (j % 8 // 2)`` of the
    code bytes ``32 * (j // 8) + 16 * (j % 2)..`` and q3_K's high bits at bit ``j // 2``
    of hmask bytes ``16 * (j % 2)..``.  (int32 throughout, word.shr/band: the element
    loops vectorize.)"""
    data, out = unmanaged(data), unmanaged(out)
    if kind == 0:
        _dequantize_q2(data, b0, b1, out)
    else:
        _dequantize_q3(data, b0, b1, out)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _dequantize_q2(data, b0, b1, out):
    three = np.int32(3)
    for b in range(b0, b1):
        o, y = b * 84, b * 256
        d_all = get_half(data, o + 80)
        m_all = get_half(data, o + 82)
        for j in range(16):
            sc = np.int64(data[o + j])
            dl = d_all * np.float32(sc & 0xF)
            ml = m_all * np.float32(sc >> 4)
            q = o + 16 + 32 * (j // 8) + 16 * (j % 2)
            shift = np.int32(2 * ((j % 8) // 2))
            for l in range(16):
                code = band(shr(np.int32(data[q + l]), shift), three)
                out[y + 16 * j + l] = dl * np.float32(code) - ml


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _dequantize_q3(data, b0, b1, out):
    three, one, four = np.int32(3), np.int32(1), np.float32(4.0)
    for b in range(b0, b1):
        o, y = b * 110, b * 256
        d_all = get_half(data, o + 108)
        for j in range(16):
            dl = d_all * np.float32(_q3_scale(data, o + 96, j))
            q = o + 32 + 32 * (j // 8) + 16 * (j % 2)
            h = o + 16 * (j % 2)
            shift, bit = np.int32(2 * ((j % 8) // 2)), np.int32(j // 2)
            for l in range(16):
                low = band(shr(np.int32(data[q + l]), shift), three)
                high = band(shr(np.int32(data[h + l]), bit), one)
                # (C: q - (hmask bit ? 0 : 4); the float difference of small integers
                # is exact)
                out[y + 16 * j + l] = dl * (np.float32(low | shl(high, np.int32(2))) - four)


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(data, kind, out, nchunks):
    nb = out.size // 256
    for c in prange(nchunks):
        _dequantize_blocks(data, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)


@njit(cache=True, nogil=True)
def codes(data, kind, out):
    """Each element's stored code into ``out``: q2_K 0..3 (``d * sc * q - dmin * m``),
    q3_K 0..7 (the low 2 bits and the hmask bit above them, meaning ``code - 4``)."""
    nbytes = block_bytes(kind)
    qs = 16 if kind == 0 else 32
    for b in range(out.size // 256):
        o = b * nbytes
        for e in range(256):
            half, r = e // 128, e % 128
            code = (np.int64(data[o + qs + 32 * half + r % 32]) >> (2 * (r // 32))) & 3
            if kind == 1:
                code |= ((np.int64(data[o + e % 32]) >> (e // 32)) & 1) << 2
            out[b * 256 + e] = code


def quantize(x, kind, out):
    nb = x.size // 256
    # (a super-block's search costs tens of microseconds: threads pay off from a few dozen)
    nchunks = min(nb // 4, n_chunks(x.size)) if x.size >= (1 << 14) else 1
    if nchunks <= 1:
        return _quantize_blocks(x, kind, 0, nb, out)
    with parallel_region():
        return _quantize_parallel(x, kind, out, nchunks)


def dequantize(data, kind, out):
    nb = out.size // 256
    nchunks = n_chunks(out.size) if out.size >= (1 << 20) else 1
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks)
