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
low 23 bits), C's conversions to ``uint8_t``/``int8_t`` (low byte).  The searches
(``kquant.search``, ``kquant.search_q6``), weights, codes and byte packing run on
16-lane float32 vectors (``lanes``), one sub-block a lane, each lane in C's order.

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
from ..word import local_block, unmanaged
from ..word import get_half, half_bits, put_half
from . import lanes as V
from .kquant.search import make_qkx2_scales, nearest_int
from .kquant.search_q6 import make_qx_scales


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of a super-block: q4_K 144, q5_K 176, q6_K 210."""
    return 144 if kind == 0 else (176 if kind == 1 else 210)


@njit(cache=True, nogil=True, error_model="numpy")
def _q45_k(x, i0, kind, out, o, s8, scales, mins, iscales, offsets, L):
    """The rest of one q4_K (kind 0) or q5_K (kind 1) super-block once its sub-blocks'
    ``make_qkx2_quants`` results are in lanes ``s8 .. s8 + 7`` of ``scales``, ``mins``,
    ``iscales`` and ``offsets`` (``make_qkx2_scales``); ``L`` (float32, 256) is scratch.
    Returns whether its d or dmin overflows float16."""
    nmax = 15 if kind == 0 else 31
    max_scale = np.float32(0.0)
    max_min = np.float32(0.0)
    for j in range(8):
        if scales[s8 + j] > max_scale:
            max_scale = scales[s8 + j]
        if mins[s8 + j] > max_min:
            max_min = mins[s8 + j]
    inv_scale = np.float32(63.0) / max_scale if max_scale > 0 else np.float32(0.0)
    inv_min = np.float32(63.0) / max_min if max_min > 0 else np.float32(0.0)
    sb = o + 4
    for j in range(8):
        ls = min(63, nearest_int(inv_scale * scales[s8 + j]) & 0xFF)
        lm = min(63, nearest_int(inv_min * mins[s8 + j]) & 0xFF)
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
        sc, m = _scale_min(out, sb, j)
        d = d_all * np.float32(sc)
        if d == 0:  # C keeps the search's codes
            isc, off = V.splat(iscales[s8 + j]), V.splat(offsets[s8 + j])
            for h in range(0, 32, 16):
                f = V.mul(isc, V.sub(V.load(x, i0 + 32 * j + h), off))
                V.store(L, 32 * j + h, V.nearest_int_clamped(f, 0, nmax))
            continue
        dm, dv = V.splat(m_all * np.float32(m)), V.splat(d)
        for h in range(0, 32, 16):  # C: clamp(nearest_int((x + dm) / d), 0, nmax)
            v = V.load(x, i0 + 32 * j + h)
            V.store(L, 32 * j + h, V.nearest_int_clamped(V.div(V.add(v, dm), dv), 0, nmax))
    # the codes packed in float (whole numbers: exact), stored as bytes
    sixteen = V.splat(np.float32(16.0))
    if kind == 0:  # q4_K: byte l of pair n: code 64n + l | code 64n + 32 + l << 4
        for n in range(4):
            for h in range(0, 32, 16):
                lo, hi = V.load(L, 64 * n + h), V.load(L, 64 * n + 32 + h)
                V.store_bytes(out, o + 16 + 32 * n + h, V.add(lo, V.mul(hi, sixteen)))
    else:  # q5_K: low 4 bits as q4_K, bit 4 of codes 64n + l, 64n + 32 + l in qh[l]
        inv16 = V.splat(np.float32(0.0625))
        for h in range(0, 32, 16):
            high = V.splat(np.float32(0.0))
            weight = np.float32(1.0)
            for n in range(4):
                lo, hi = V.load(L, 64 * n + h), V.load(L, 64 * n + 32 + h)
                lo_top, hi_top = V.floor(V.mul(lo, inv16)), V.floor(V.mul(hi, inv16))
                lo, hi = V.sub(lo, V.mul(lo_top, sixteen)), V.sub(hi, V.mul(hi_top, sixteen))
                V.store_bytes(out, o + 48 + 32 * n + h, V.add(lo, V.mul(hi, sixteen)))
                high = V.add(high, V.mul(lo_top, V.splat(weight)))
                high = V.add(high, V.mul(hi_top, V.splat(weight * np.float32(2.0))))
                weight *= np.float32(4.0)
            V.store_bytes(out, o + 16 + h, high)
    return (dh & 0x7FFF) == 0x7C00 or (mh & 0x7FFF) == 0x7C00


@njit(cache=True, nogil=True, error_model="numpy")
def _q6_k(xt, nk, s, out, o, scales, iscales, L, Lt):
    """The rest of one q6_K super-block, sub-block ``j`` in lane ``16 * s + j`` of the
    searched ``xt`` (element ``i`` at ``nk * i + 16 * s + j``), once its
    ``make_qx_quants`` results are in those lanes of ``scales`` and ``iscales``
    (``make_qx_scales``); ``L``, ``Lt`` (float32, 256) are scratch.  Returns whether it
    holds a NaN and whether its d overflows float16."""
    s16 = 16 * s
    zero, bias = V.splat(np.float32(0.0)), V.splat(np.float32(32.0))
    max_scale = np.float32(0.0)
    max_abs_scale = np.float32(0.0)
    for ib in range(16):  # (C: the first of the largest |scale|; selects, not branches)
        sc = scales[s16 + ib]
        more = abs(sc) > max_abs_scale
        max_abs_scale = abs(sc) if more else max_abs_scale
        max_scale = sc if more else max_scale
    if max_abs_scale < np.float32(1e-15):
        for k in range(210):
            out[o + k] = 0
        ordered = V.eq(zero, zero)
        for i in range(16):
            v = V.load(xt, nk * i + s16)
            ordered = V.both(ordered, V.eq(v, v))  # (False in a NaN lane)
        return not V.every(ordered), False
    iscale = np.float32(-128.0) / max_scale
    dh = half_bits(np.float32(1.0) / iscale)
    put_half(out, o + 208, dh)
    # C: (int8_t)MIN(127, nearest_int(iscale * scales[ib])), 16 lanes (low byte stored)
    V.store_bytes(out, o + 192, V.nearest_int_clamped(
        V.mul(V.splat(iscale), V.load(scales, s16)), -4194304, 127))
    # C: nearest_int(x / d) clamped to -32..31, plus 32, with d = d_all * scale of the
    # sub-block, one lane per sub-block; where d is 0 C keeps the search's codes (0 for
    # an all-zero sub-block: a NaN inverse scale)
    d = V.mul(V.splat(get_half(out, o + 208)), V.load_int8(out, o + 192))
    keep = V.eq(d, zero)
    kept = V.any(keep)
    isc = V.load(iscales, s16)
    searched = V.eq(isc, isc)  # (NaN: an all-zero sub-block)
    ordered = V.eq(zero, zero)
    for i in range(16):
        v = V.load(xt, nk * i + s16)
        ordered = V.both(ordered, V.eq(v, v))
        l = V.add(V.nearest_int_clamped(V.div(v, d), -32, 31), bias)
        if kept:
            alt = V.add(V.nearest_int_clamped(V.mul(isc, v), -32, 31), bias)
            alt = V.select(searched, alt, zero)
            l = V.select(keep, alt, l)
        V.store(Lt, 16 * i, l)
    V.transpose_store(Lt, 0, 16, L, 0, 16)
    # codes a, b, c, e at l, l + 32, l + 64, l + 96 of each half: low 4 bits of a | c << 4
    # and of b | e << 4 in ql, the top 2 bits of each in qh; packed in float (exact):
    # the stored low byte of a + 16 * (c - top(a)) is low(a) | low(c) << 4
    sixteen, inv16 = V.splat(np.float32(16.0)), V.splat(np.float32(0.0625))
    four, sixty4 = V.splat(np.float32(4.0)), V.splat(np.float32(64.0))
    for n in range(2):
        for h in range(0, 32, 16):
            a, b = V.load(L, 128 * n + h), V.load(L, 128 * n + 32 + h)
            c, e = V.load(L, 128 * n + 64 + h), V.load(L, 128 * n + 96 + h)
            a_top, b_top = V.floor(V.mul(a, inv16)), V.floor(V.mul(b, inv16))
            c_top, e_top = V.floor(V.mul(c, inv16)), V.floor(V.mul(e, inv16))
            V.store_bytes(out, o + 64 * n + h, V.add(a, V.mul(V.sub(c, a_top), sixteen)))
            V.store_bytes(out, o + 64 * n + 32 + h,
                          V.add(b, V.mul(V.sub(e, b_top), sixteen)))
            top = V.add(V.add(a_top, V.mul(b_top, four)),
                        V.add(V.mul(c_top, sixteen), V.mul(e_top, sixty4)))
            V.store_bytes(out, o + 128 + 32 * n + h, top)
    return not V.every(ordered), (dh & 0x7FFF) == 0x7C00


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    x, out = unmanaged(x), unmanaged(out)  # (no reference counting per helper call)
    L, Lt = local_block(x, 256), local_block(x, 256)
    nbytes = block_bytes(kind)
    nan = ovf = 0
    xt, wt = local_block(x, 2048), local_block(x, 2048)
    g_scales, g_mins = local_block(x, 64), local_block(x, 64)
    g_iscales, g_offsets = local_block(x, 64), local_block(x, 64)
    if kind == 2:  # q6_K: the sub-blocks of up to 4 super-blocks searched together
        for g0 in range(b0, b1, 4):
            ns = min(4, b1 - g0)
            nk = 16 * ns
            for s in range(ns):  # lane k: sub-block k % 16 of super-block g0 + k // 16
                V.transpose_store(x, (g0 + s) * 256, 16, xt, 16 * s, nk)
            make_qx_scales(xt, 32, nk, g_scales, g_iscales)
            for s in range(ns):
                b = g0 + s
                bad, over = _q6_k(xt, nk, s, out, b * nbytes, g_scales, g_iscales, L, Lt)
                nan, ovf = nan + bad, ovf + (over and not bad)
        return nan, ovf
    # q4_K / q5_K: the sub-blocks of up to 8 super-blocks searched together as lanes
    nmax = 15 if kind == 0 else 31
    rmin = np.float32(-1.0) if kind == 0 else np.float32(-0.5)
    nstep = 20 if kind == 0 else 15
    for g0 in range(b0, b1, 8):
        ns = min(8, b1 - g0)
        nk = (8 * ns + 15) // 16 * 16  # (lanes go 16 at a time: zeros pad an odd count)
        for g in range(0, nk, 16):  # lane k: sub-block k % 8 of super-block g0 + k // 8
            if g + 16 <= 8 * ns:
                for h in range(0, 32, 16):
                    V.transpose_store(x, g0 * 256 + 32 * g + h, 32, xt, nk * h + g, nk)
                continue
            for k in range(g, nk):  # (zeros pad an odd count)
                for l in range(32):
                    xt[nk * l + k] = x[g0 * 256 + 32 * k + l] if k < 8 * ns else np.float32(0)
        for g in range(0, nk, 16):  # C's weights sqrt(sum(x^2) / 32) + |x|, 16 lanes a pass
            sum_x2 = V.splat(np.float32(0.0))
            for l in range(32):
                v = V.load(xt, nk * l + g)
                sum_x2 = V.add(sum_x2, V.mul(v, v))
            av_x = V.sqrt(V.div(sum_x2, V.splat(np.float32(32.0))))
            for l in range(32):
                V.store(wt, nk * l + g, V.add(av_x, V.fabs(V.load(xt, nk * l + g))))
        make_qkx2_scales(xt, wt, nmax, rmin, np.float32(0.1), nstep, g_scales, g_mins,
                         g_iscales, g_offsets, nk)
        for s in range(ns):
            b = g0 + s
            bad = _has_nan(x, b * 256)
            over = _q45_k(x, b * 256, kind, out, b * nbytes, 8 * s, g_scales, g_mins,
                          g_iscales, g_offsets, L)
            nan, ovf = nan + bad, ovf + (over and not bad)
    return nan, ovf


@njit(cache=True, nogil=True, inline="always")
def _has_nan(x, i0):
    ordered = V.eq(V.load(x, i0), V.load(x, i0))
    for i in range(16, 256, 16):
        v = V.load(x, i0 + i)
        ordered = V.both(ordered, V.eq(v, v))  # (False in a NaN lane)
    return not V.every(ordered)


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
    """``dequantize_row_q4_K`` etc.: q4_K/q5_K ``(d * sc) * q - dmin * m``, q6_K
    ``(d * sc) * (q - 32)``, in float32 (``gguf.quants``' order)."""
    data, out = unmanaged(data), unmanaged(out)
    nbytes = block_bytes(kind)
    for b in range(b0, b1):
        o, y = b * nbytes, b * 256
        if kind == 2:
            d = get_half(data, o + 208)
            for n in range(2):
                ql, qh, sc = o + 64 * n, o + 128 + 32 * n, o + 192 + 8 * n
                for l in range(32):
                    is_ = l // 16
                    a, c = np.int32(data[ql + l]), np.int32(data[ql + l + 32])
                    h = np.int32(data[qh + l])
                    q1 = (a & 0xF) | ((h & 3) << 4)
                    q2 = (c & 0xF) | (((h >> 2) & 3) << 4)
                    q3 = (a >> 4) | (((h >> 4) & 3) << 4)
                    q4 = (c >> 4) | (((h >> 6) & 3) << 4)
                    s1 = np.float32(np.int8(data[sc + is_]))
                    s2 = np.float32(np.int8(data[sc + is_ + 2]))
                    s3 = np.float32(np.int8(data[sc + is_ + 4]))
                    s4 = np.float32(np.int8(data[sc + is_ + 6]))
                    out[y + 128 * n + l] = (d * s1) * np.float32(q1 - 32)
                    out[y + 128 * n + l + 32] = (d * s2) * np.float32(q2 - 32)
                    out[y + 128 * n + l + 64] = (d * s3) * np.float32(q3 - 32)
                    out[y + 128 * n + l + 96] = (d * s4) * np.float32(q4 - 32)
            continue
        d_all = get_half(data, o)
        m_all = get_half(data, o + 2)
        qs = o + (16 if kind == 0 else 48)
        for pair in range(4):
            sc1, m1 = _scale_min(data, o + 4, 2 * pair)
            sc2, m2 = _scale_min(data, o + 4, 2 * pair + 1)
            d1, dm1 = d_all * np.float32(sc1), m_all * np.float32(m1)
            d2, dm2 = d_all * np.float32(sc2), m_all * np.float32(m2)
            q = qs + 32 * pair
            e = y + 64 * pair
            for l in range(32):
                byte = np.int32(data[q + l])
                lo, hi = byte & 0xF, byte >> 4
                if kind == 1:
                    h = np.int32(data[o + 16 + l]) >> (2 * pair)
                    lo |= (h & 1) << 4
                    hi |= ((h >> 1) & 1) << 4
                out[e + l] = d1 * np.float32(lo) - dm1
                out[e + 32 + l] = d2 * np.float32(hi) - dm2


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
    # (a super-block costs a few microseconds: threads pay off from a few dozen)
    nchunks = min(nb // 8, n_chunks(x.size)) if x.size >= (1 << 14) else 1
    if nchunks == 1:
        return _quantize_blocks(x, kind, 0, nb, out)
    with parallel_region():
        return _quantize_parallel(x, kind, out, nchunks)


def dequantize(data, kind, out):
    nb = out.size // 256
    nchunks = n_chunks(out.size) if out.size >= (1 << 20) else 1  # (as the legacy kernels)
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks)
