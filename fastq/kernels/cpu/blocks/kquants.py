"""GGML K-quants (CPU): q4_K, q5_K, q6_K, super-blocks of 256 elements.

Backend interface (as ``fastq.kernels.cpu.blocks.ggml``): ``quantize(x, kind, out) ->
(nan_blocks, overflow_blocks)``, ``dequantize(data, kind, out)``, ``codes(data, kind,
out)``; ``kind`` 0 q4_K, 1 q5_K, 2 q6_K.

A port of llama.cpp's reference quantizer (``quantize_row_q4_K_ref``,
``quantize_row_q5_K_ref``, ``quantize_row_q6_K_ref`` with ``make_qkx2_quants``,
``make_qx_quants`` and ``nearest_int`` in ``ggml/src/ggml-quants.c``; ggml, MIT
licence, Copyright (c) 2023-2024 The ggml authors), no importance matrix, written to
give the same bytes: every operation in float32 in C's order (no contraction into FMA,
no reassociation), ``nearest_int`` by its own magic-number trick (``f + 12582912``, the
low 23 bits), C's conversions to ``uint8_t``/``int8_t`` (low byte).

* q4_K / q5_K: per sub-block of 32, weights ``sqrt(sum(x^2)/32) + |x|``; scale and min
  from ``make_qkx2_quants(32, nmax=15/31, rmin=-1/-0.5, rdelta=0.1, nstep=20/15)``: the
  least-squares fit ``x ~ scale * l - min`` over the candidate inverse scales
  ``(rmin + rdelta * is + nmax) / (max - min)``, keeping the smallest weighted squared
  error; the 8 scales and mins as 6-bit multiples of ``d = max_scale / 63`` and
  ``dmin = max_min / 63`` (float16); codes ``nearest_int((x + dmin * m) / (d * sc))``.
* q6_K: per sub-block of 16, ``make_qx_quants(16, 32, rmse_type=1)`` (weights ``x^2``,
  the 18 candidate scales ``-(32 + 0.1 * is) / max``), 8-bit scales of ``d = -max / 128``,
  codes ``nearest_int(x / (d * sc))`` in -32..31.
"""
import numpy as np
from numba import njit, prange

from ....runtime.threads import parallel_region
from ..parallel import n_chunks
from ..word import as_bits, band, local_block, unmanaged
from .ggml import get_half, half_bits, put_half

F = np.float32


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of a super-block: q4_K 144, q5_K 176, q6_K 210."""
    return 144 if kind == 0 else (176 if kind == 1 else 210)


@njit(cache=True, nogil=True, inline="always")
def nearest_int(f):
    """llama.cpp's ``nearest_int``: round half to even through ``f + 1.5 * 2**23``."""
    return np.int64(as_bits(f + np.float32(12582912.0)) & np.uint32(0x7FFFFF)) - 0x400000


@njit(cache=True, nogil=True, inline="always")
def _clamp(v, lo, hi):
    return max(lo, min(hi, v))


@njit(cache=True, nogil=True, inline="always")
def nearest_int32(f):
    """``nearest_int`` in 32-bit lanes (``band``: a plain ``&`` widens to 64)."""
    return (np.int32(band(as_bits(f + np.float32(12582912.0)), np.uint32(0x7FFFFF)))
            - np.int32(0x400000))


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
        l = _clamp(nearest_int(iscale * v), -nmax, nmax - 1)
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
                L[l0 + i] = nmax + _clamp(nearest_int(isc[c] * x[i0 + i]), -nmax, nmax - 1)
            scale = slx[c] / sl2[c]
            best = scale * slx[c]
    return scale


@njit(cache=True, nogil=True, error_model="numpy")
def _q45_k(x, i0, kind, out, o, L, lanes, weights, scales, mins):
    """One q4_K (kind 0) or q5_K (kind 1) super-block; returns whether its d or dmin
    overflows float16."""
    nmax = 15 if kind == 0 else 31
    rmin = np.float32(-1.0) if kind == 0 else np.float32(-0.5)
    nstep = 20 if kind == 0 else 15
    max_scale = np.float32(0.0)
    max_min = np.float32(0.0)
    xt, wt, lt = lanes  # element i of sub-block j at 8 * i + j
    for j in range(8):
        s0 = i0 + 32 * j
        sum_x2 = np.float32(0.0)
        for l in range(32):
            sum_x2 += x[s0 + l] * x[s0 + l]
        av_x = np.sqrt(sum_x2 / np.float32(32.0))
        for l in range(32):
            xt[8 * l + j] = x[s0 + l]
            wt[8 * l + j] = av_x + abs(x[s0 + l])
    make_qkx2_x8(xt, wt, lt, nmax, rmin, np.float32(0.1), nstep, scales, mins, 8)
    for j in range(8):
        for l in range(32):
            L[32 * j + l] = lt[8 * l + j]
        if scales[j] > max_scale:
            max_scale = scales[j]
        if mins[j] > max_min:
            max_min = mins[j]
    inv_scale = np.float32(63.0) / max_scale if max_scale > 0 else np.float32(0.0)
    inv_min = np.float32(63.0) / max_min if max_min > 0 else np.float32(0.0)
    sb = o + 4
    for j in range(8):
        ls = min(63, nearest_int(inv_scale * scales[j]) & 0xFF)
        lm = min(63, nearest_int(inv_min * mins[j]) & 0xFF)
        if j < 4:
            out[sb + j] = ls
            out[sb + j + 4] = lm
        else:
            out[sb + j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            out[sb + j - 4] |= (ls >> 4) << 6
            out[sb + j] |= (lm >> 4) << 6
    dh = half_bits(max_scale / np.float32(63.0))
    mh = half_bits(max_min / np.float32(63.0))
    put_half(out, o, dh)
    put_half(out, o + 2, mh)
    d_all = get_half(out, o)
    m_all = get_half(out, o + 2)
    for j in range(8):
        if j < 4:
            sc = np.int64(out[sb + j]) & 63
            m = np.int64(out[sb + j + 4]) & 63
        else:
            sc = (np.int64(out[sb + j + 4]) & 0xF) | ((np.int64(out[sb + j - 4]) >> 6) << 4)
            m = (np.int64(out[sb + j + 4]) >> 4) | ((np.int64(out[sb + j]) >> 6) << 4)
        d = d_all * np.float32(sc)
        if d == 0:
            continue
        dm = m_all * np.float32(m)
        for ii in range(32):
            L[32 * j + ii] = _clamp(nearest_int((x[i0 + 32 * j + ii] + dm) / d), 0, nmax)
    if kind == 0:
        q = o + 16
        for j in range(0, 256, 64):
            for l in range(32):
                out[q + l] = L[j + l] | (L[j + l + 32] << 4)
            q += 32
    else:
        qh = o + 16
        ql = o + 48
        for j in range(32):
            out[qh + j] = 0
        m1 = 1
        m2 = 2
        for n in range(0, 256, 64):
            for j in range(32):
                l1 = np.int64(L[n + j])
                if l1 > 15:
                    l1 -= 16
                    out[qh + j] |= m1
                l2 = np.int64(L[n + j + 32])
                if l2 > 15:
                    l2 -= 16
                    out[qh + j] |= m2
                out[ql + j] = l1 | (l2 << 4)
            m1 <<= 2
            m2 <<= 2
            ql += 32
    return (dh & 0x7FFF) == 0x7C00 or (mh & 0x7FFF) == 0x7C00


@njit(cache=True, nogil=True, error_model="numpy")
def _q6_k(x, i0, out, o, L, lanes, scales):
    """One q6_K super-block; returns whether its d overflows float16."""
    max_scale = np.float32(0.0)
    max_abs_scale = np.float32(0.0)
    for ib in range(16):
        s = make_qx(x, i0 + 16 * ib, 16, 32, L, 16 * ib, lanes)
        scales[ib] = s
        if abs(s) > max_abs_scale:
            max_abs_scale = abs(s)
            max_scale = s
    if max_abs_scale < np.float32(1e-15):
        for k in range(210):
            out[o + k] = 0
        return False
    iscale = np.float32(-128.0) / max_scale
    dh = half_bits(np.float32(1.0) / iscale)
    put_half(out, o + 208, dh)
    for ib in range(16):
        out[o + 192 + ib] = min(127, nearest_int(iscale * scales[ib])) & 0xFF
    d_all = get_half(out, o + 208)
    for j in range(16):
        d = d_all * np.float32(np.int8(out[o + 192 + j]))
        if d == 0:
            continue
        for ii in range(16):
            L[16 * j + ii] = _clamp(nearest_int(x[i0 + 16 * j + ii] / d), -32, 31) + 32
    ql = o
    qh = o + 128
    for j in range(0, 256, 128):
        for l in range(32):
            a, b = np.int64(L[j + l]), np.int64(L[j + l + 32])
            c, e = np.int64(L[j + l + 64]), np.int64(L[j + l + 96])
            out[ql + l] = (a & 0xF) | ((c & 0xF) << 4)
            out[ql + l + 32] = (b & 0xF) | ((e & 0xF) << 4)
            out[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
        ql += 64
        qh += 32
    return (dh & 0x7FFF) == 0x7C00


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    x, out = unmanaged(x), unmanaged(out)  # (no reference counting per helper call)
    L = local_block(out, 256)
    lanes = (local_block(x, 24), local_block(x, 24), local_block(x, 24))  # make_qx's
    xt, wt, lt = local_block(x, 256), local_block(x, 256), local_block(out, 256)
    weights = local_block(x, 32)
    scales = local_block(x, 16)
    mins = local_block(x, 8)
    nbytes = block_bytes(kind)
    nan = ovf = 0
    for b in range(b0, b1):
        i0 = b * 256
        bad = False
        for i in range(256):
            bad |= x[i0 + i] != x[i0 + i]
        if bad:
            nan += 1
        if kind == 2:
            over = _q6_k(x, i0, out, b * nbytes, L, lanes, scales)
        else:
            over = _q45_k(x, i0, kind, out, b * nbytes, L, (xt, wt, lt), weights, scales,
                          mins)
        if over and not bad:
            ovf += 1
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


@njit(cache=True, nogil=True, inline="always")
def _scale_min(data, sb, j):
    """``get_scale_min_k4(j, scales)``: the 6-bit scale and min of sub-block ``j``."""
    if j < 4:
        return np.int64(data[sb + j]) & 63, np.int64(data[sb + j + 4]) & 63
    return ((np.int64(data[sb + j + 4]) & 0xF) | ((np.int64(data[sb + j - 4]) >> 6) << 4),
            (np.int64(data[sb + j + 4]) >> 4) | ((np.int64(data[sb + j]) >> 6) << 4))


@njit(cache=True, nogil=True, inline="always")
def _code(data, o, kind, e):
    """The stored code of element ``e`` of the super-block at byte ``o``."""
    if kind == 2:
        half, r = e // 128, e % 128
        quarter, l = r // 32, r % 32
        low = np.int64(data[o + 64 * half + l + 32 * (quarter & 1)])
        low = (low >> 4) if quarter >= 2 else (low & 0xF)
        high = (np.int64(data[o + 128 + 32 * half + l]) >> (2 * quarter)) & 3
        return low | (high << 4)
    pair, r = e // 64, e % 64
    l = r % 32
    byte = np.int64(data[o + 16 + 32 * (kind == 1) + 32 * pair + l])
    code = (byte >> 4) if r >= 32 else (byte & 0xF)
    if kind == 1:
        code |= ((np.int64(data[o + 16 + l]) >> (2 * pair + (r >= 32))) & 1) << 4
    return code


@njit(cache=True, nogil=True, error_model="numpy")
def _dequantize_blocks(data, kind, b0, b1, out):
    data, out = unmanaged(data), unmanaged(out)
    nbytes = block_bytes(kind)
    for b in range(b0, b1):
        o, i0 = b * nbytes, b * 256
        if kind == 2:
            d = get_half(data, o + 208)
            for e in range(256):
                sc = np.float32(np.int8(data[o + 192 + e // 16]))
                out[i0 + e] = d * sc * np.float32(_code(data, o, kind, e) - 32)
            continue
        d_all = get_half(data, o)
        m_all = get_half(data, o + 2)
        for j in range(8):
            sc, m = _scale_min(data, o + 4, j)
            d = d_all * np.float32(sc)
            dm = m_all * np.float32(m)
            for e in range(32 * j, 32 * j + 32):
                out[i0 + e] = d * np.float32(_code(data, o, kind, e)) - dm


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(data, kind, out, nchunks):
    nb = out.size // 256
    for c in prange(nchunks):
        _dequantize_blocks(data, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out)


@njit(cache=True, nogil=True)
def codes(data, kind, out):
    """Each element's stored code (q4_K 0..15, q5_K 0..31, q6_K 0..63) into ``out``."""
    nbytes = block_bytes(kind)
    for b in range(out.size // 256):
        for e in range(256):
            out[b * 256 + e] = _code(data, b * nbytes, kind, e)


def quantize(x, kind, out):
    nb = x.size // 256
    nchunks = min(nb, n_chunks(x.size)) if x.size >= 4096 else 1
    if nchunks == 1:
        return _quantize_blocks(x, kind, 0, nb, out)
    with parallel_region():
        return _quantize_parallel(x, kind, out, nchunks)


def dequantize(data, kind, out):
    nb = out.size // 256
    nchunks = n_chunks(out.size) if out.size >= (1 << 16) else 1
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks)
