"""GGML K-quants (CUDA twin of ``fastq.kernels.cpu.blocks.kquants``): q4_K, q5_K, q6_K;
``kind`` 0 q4_K, 1 q5_K, 2 q6_K.

``quantize(x, kind, out) -> (nan_blocks, overflow_blocks)``, ``dequantize(data, kind,
out)`` and ``codes(data, kind, out)`` keep the CPU's names, layouts and float32
arithmetic, C's operation order included: llama.cpp's ``quantize_row_q4_K_ref`` etc.
with ``make_qkx2_quants`` / ``make_qx_quants`` and ``nearest_int`` (``ggml/src/
ggml-quants.c``; ggml, MIT licence, Copyright (c) 2023-2024 The ggml authors), and
``dequantize_row_q4_K`` etc. in ``gguf.quants``' order: q4_K/q5_K ``(d * sc) * q - dmin
* m``, q6_K ``(d * sc) * (q - 32)``.  Every product that feeds an addition goes through
``mul`` (never fused into an FMA), the float16 scales by the bit arithmetic of
``fastq.kernels.cuda.blocks.ggml``.

Quantization runs two kernels: the scale search, one thread per sub-block (32 elements
for q4_K/q5_K, 16 for q6_K: C's serial search, which the CPU runs in vector lanes, is
independent per sub-block), writing each sub-block's scale, min and codes to scratch
arrays; then one thread per super-block quantizes the scales to 6 or 8 bits, re-derives
the codes from them and writes the bytes.  Dequantization and codes: one thread per
element.
"""
import math

import numpy as np
from numba import cuda

from .. import launch, run_over
from .ggml import as_bits, get_half, half_bits, mul, put_half


@cuda.jit(device=True, cache=True)
def block_bytes(kind):
    """Bytes of a super-block: q4_K 144, q5_K 176, q6_K 210."""
    return 144 if kind == 0 else (176 if kind == 1 else 210)


@cuda.jit(device=True, cache=True)
def _scale_min(data, sb, j):
    """``get_scale_min_k4(j, scales)``: the 6-bit scale and min of sub-block ``j``."""
    if j < 4:
        return np.int64(data[sb + j]) & 63, np.int64(data[sb + j + 4]) & 63
    return ((np.int64(data[sb + j + 4]) & 0xF) | ((np.int64(data[sb + j - 4]) >> 6) << 4),
            (np.int64(data[sb + j + 4]) >> 4) | ((np.int64(data[sb + j]) >> 6) << 4))


@cuda.jit(device=True, cache=True)
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
    byte = np.int64(data[o + 16 + 32 * (1 if kind == 1 else 0) + 32 * pair + l])
    code = (byte >> 4) if r >= 32 else (byte & 0xF)
    if kind == 1:
        code |= ((np.int64(data[o + 16 + l]) >> (2 * pair + (1 if r >= 32 else 0))) & 1) << 4
    return code


@cuda.jit(cache=True)
def _dequantize_kernel(data, kind, out):
    nbytes = block_bytes(kind)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        o, e = (i // 256) * nbytes, i % 256
        q = _code(data, o, kind, e)
        if kind == 2:
            r = e % 128
            s = np.int64(data[o + 192 + 8 * (e // 128) + (r % 32) // 16 + 2 * (r // 32)])
            s = s - 256 if s >= 128 else s  # (the int8 scale)
            d = mul(get_half(data, o + 208), np.float32(s))
            out[i] = d * np.float32(q - 32)
        else:
            sc, m = _scale_min(data, o + 4, e // 32)
            d = mul(get_half(data, o), np.float32(sc))
            dm = mul(get_half(data, o + 2), np.float32(m))
            out[i] = mul(d, np.float32(q)) - dm


@cuda.jit(cache=True)
def _codes_kernel(data, kind, out):
    nbytes = block_bytes(kind)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _code(data, (i // 256) * nbytes, kind, i % 256)


def dequantize(data, kind, out):
    """See ``fastq.kernels.cpu.blocks.kquants``: super-block bytes to device float32."""
    run_over(_dequantize_kernel, out.size, data, kind, out)


def codes(data, kind, out):
    """Each element's stored code (q4_K 0..15, q5_K 0..31, q6_K 0..63) into ``out``."""
    run_over(_codes_kernel, out.size, data, kind, out)


@cuda.jit(device=True, cache=True)
def nearest_int(f):
    """llama.cpp's ``nearest_int``: round half to even through ``f + 1.5 * 2**23`` (``f``
    already rounded: pass products through ``mul``)."""
    return (np.int64(as_bits(f + np.float32(12582912.0))) & 0x7FFFFF) - 0x400000


@cuda.jit(device=True, cache=True)
def _make_qkx2(x, s0, av_x, nmax, rmin, nstep, L, laux):
    """``make_qkx2_quants(32, nmax, x + s0, weights av_x + |x|, L + s0, &min, Laux, rmin,
    0.1, nstep, false)``: returns ``(scale, min)``; C's steps in C's order."""
    fnmax = np.float32(nmax)
    zero = np.float32(0.0)
    lo = x[s0]
    hi = x[s0]
    sum_w = av_x + abs(x[s0])
    sum_x = mul(sum_w, x[s0])
    for i in range(1, 32):
        v = x[s0 + i]
        w = av_x + abs(v)
        lo = v if v < lo else lo
        hi = v if v > hi else hi
        sum_w += w
        sum_x += mul(w, v)
    lo = zero if lo > 0 else lo
    if hi == lo:
        for i in range(32):
            L[s0 + i] = 0
        return zero, -lo
    iscale = fnmax / (hi - lo)
    scale = np.float32(1.0) / iscale
    best = zero
    for i in range(32):
        v = x[s0 + i]
        l = max(0, min(nmax, nearest_int(mul(iscale, v - lo))))
        L[s0 + i] = l
        diff = mul(scale, np.float32(l)) + lo - v
        best += mul(av_x + abs(v), mul(diff, diff))
    for step in range(nstep + 1):
        iscale = (rmin + mul(np.float32(0.1), np.float32(step)) + fnmax) / (hi - lo)
        sum_l = zero
        sum_l2 = zero
        sum_xl = zero
        for i in range(32):
            v = x[s0 + i]
            w = av_x + abs(v)
            l = max(0, min(nmax, nearest_int(mul(iscale, v - lo))))
            laux[i] = l
            fl = np.float32(l)
            sum_l += mul(w, fl)
            sum_l2 += mul(mul(w, fl), fl)
            sum_xl += mul(mul(w, fl), v)
        D = mul(sum_w, sum_l2) - mul(sum_l, sum_l)
        if D > 0:
            t_scale = (mul(sum_w, sum_xl) - mul(sum_x, sum_l)) / D
            t_min = (mul(sum_l2, sum_x) - mul(sum_l, sum_xl)) / D
            if t_min > 0:
                t_min = zero
                t_scale = sum_xl / sum_l2
            err = zero
            for i in range(32):
                v = x[s0 + i]
                diff = mul(t_scale, np.float32(laux[i])) + t_min - v
                err += mul(av_x + abs(v), mul(diff, diff))
            if err < best:
                for i in range(32):
                    L[s0 + i] = laux[i]
                best = err
                scale = t_scale
                lo = t_min
    return scale, -lo


@cuda.jit(device=True, cache=True)
def _make_qx(x, s0, L):
    """``make_qx_quants(16, 32, x + s0, L + s0, rmse_type=1, NULL)``: returns the scale;
    ``L`` holds ``l + 32``."""
    fnmax = np.float32(32.0)
    zero = np.float32(0.0)
    amax = zero
    big = zero
    for i in range(16):
        v = x[s0 + i]
        if abs(v) > amax:
            amax = abs(v)
            big = v
    if amax < np.float32(1e-15):  # GROUP_MAX_EPS
        for i in range(16):
            L[s0 + i] = 0
        return zero
    iscale = -fnmax / big
    slx = zero
    sl2 = zero
    for i in range(16):
        v = x[s0 + i]
        l = max(-32, min(31, nearest_int(mul(iscale, v))))
        L[s0 + i] = l + 32
        fl = np.float32(l)
        w = mul(v, v)
        slx += mul(mul(w, v), fl)
        sl2 += mul(mul(w, fl), fl)
    scale = slx / sl2 if sl2 != 0 else zero
    best = mul(scale, slx)
    for c in range(18):  # is = -9..-1, 1..9
        step = c - 9 if c < 9 else c - 8
        iscale = -(fnmax + mul(np.float32(0.1), np.float32(step))) / big
        slx = zero
        sl2 = zero
        for i in range(16):
            v = x[s0 + i]
            fl = np.float32(max(-32, min(31, nearest_int(mul(iscale, v)))))
            w = mul(v, v)
            slx += mul(mul(w, v), fl)
            sl2 += mul(mul(w, fl), fl)
        if sl2 > 0 and mul(slx, slx) > mul(best, sl2):
            for i in range(16):
                L[s0 + i] = max(-32, min(31, nearest_int(mul(iscale, x[s0 + i])))) + 32
            scale = slx / sl2
            best = mul(scale, slx)
    return scale


@cuda.jit(cache=True)
def _search_kernel(x, kind, scales, mins, L):
    """Sub-block ``t``'s scale (and min) and codes, as C's search leaves them."""
    laux = cuda.local.array(32, np.int64)
    for t in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        if kind == 2:
            scales[t] = _make_qx(x, 16 * t, L)
            continue
        s0 = 32 * t
        sum_x2 = np.float32(0.0)
        for i in range(32):
            sum_x2 += mul(x[s0 + i], x[s0 + i])
        av_x = np.float32(math.sqrt(sum_x2 / np.float32(32.0)))
        nmax = 15 if kind == 0 else 31
        rmin = np.float32(-1.0) if kind == 0 else np.float32(-0.5)
        scale, m = _make_qkx2(x, s0, av_x, nmax, rmin, 20 if kind == 0 else 15, L, laux)
        scales[t] = scale
        mins[t] = m


@cuda.jit(device=True, cache=True)
def _q45_k(x, i0, kind, out, o, L, scales, mins, t0):
    """Super-block bytes from its sub-blocks' results (``scales``/``mins`` from ``t0``);
    returns whether its d or dmin overflows float16."""
    nmax = 15 if kind == 0 else 31
    max_scale = np.float32(0.0)
    max_min = np.float32(0.0)
    for j in range(8):
        if scales[t0 + j] > max_scale:
            max_scale = scales[t0 + j]
        if mins[t0 + j] > max_min:
            max_min = mins[t0 + j]
    inv_scale = np.float32(63.0) / max_scale if max_scale > 0 else np.float32(0.0)
    inv_min = np.float32(63.0) / max_min if max_min > 0 else np.float32(0.0)
    sb = o + 4
    for j in range(8):
        ls = min(63, nearest_int(mul(inv_scale, scales[t0 + j])) & 0xFF)
        lm = min(63, nearest_int(mul(inv_min, mins[t0 + j])) & 0xFF)
        if j < 4:
            out[sb + j] = ls
            out[sb + j + 4] = lm
        else:
            out[sb + j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            out[sb + j - 4] = np.int64(out[sb + j - 4]) | ((ls >> 4) << 6)
            out[sb + j] = np.int64(out[sb + j]) | ((lm >> 4) << 6)
    dh = half_bits(max_scale / np.float32(63.0))
    mh = half_bits(max_min / np.float32(63.0))
    put_half(out, o, dh)
    put_half(out, o + 2, mh)
    d_all = get_half(out, o)
    m_all = get_half(out, o + 2)
    for j in range(8):
        sc, m = _scale_min(out, sb, j)
        d = mul(d_all, np.float32(sc))
        if d == 0:
            continue
        dm = mul(m_all, np.float32(m))
        for ii in range(32):
            e = i0 + 32 * j + ii
            L[e] = max(0, min(nmax, nearest_int((x[e] + dm) / d)))
    if kind == 0:
        for j in range(4):
            for l in range(32):
                e = i0 + 64 * j + l
                out[o + 16 + 32 * j + l] = np.int64(L[e]) | (np.int64(L[e + 32]) << 4)
    else:
        for j in range(32):
            h = np.int64(0)
            for n in range(4):
                e = i0 + 64 * n + j
                l1, l2 = np.int64(L[e]), np.int64(L[e + 32])
                h |= ((l1 >> 4) << (2 * n)) | ((l2 >> 4) << (2 * n + 1))
                out[o + 48 + 32 * n + j] = (l1 & 0xF) | ((l2 & 0xF) << 4)
            out[o + 16 + j] = h
    return (dh & 0x7FFF) == 0x7C00 or (mh & 0x7FFF) == 0x7C00


@cuda.jit(device=True, cache=True)
def _q6_k(x, i0, out, o, L, scales, t0):
    """Super-block bytes from its 16 sub-blocks' scales (from ``t0``) and codes;
    returns whether its d overflows float16."""
    max_scale = np.float32(0.0)
    max_abs_scale = np.float32(0.0)
    for ib in range(16):
        s = scales[t0 + ib]
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
        out[o + 192 + ib] = min(127, nearest_int(mul(iscale, scales[t0 + ib]))) & 0xFF
    d_all = get_half(out, o + 208)
    for j in range(16):
        s = np.int64(out[o + 192 + j])
        d = mul(d_all, np.float32(s - 256 if s >= 128 else s))
        if d == 0:
            continue
        for ii in range(16):
            e = i0 + 16 * j + ii
            L[e] = max(-32, min(31, nearest_int(x[e] / d))) + 32
    for j in range(2):
        ql, qh, e0 = o + 64 * j, o + 128 + 32 * j, i0 + 128 * j
        for l in range(32):
            a, b = np.int64(L[e0 + l]), np.int64(L[e0 + l + 32])
            c, f = np.int64(L[e0 + l + 64]), np.int64(L[e0 + l + 96])
            out[ql + l] = (a & 0xF) | ((c & 0xF) << 4)
            out[ql + l + 32] = (b & 0xF) | ((f & 0xF) << 4)
            out[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((f >> 4) << 6)
    return (dh & 0x7FFF) == 0x7C00


@cuda.jit(cache=True)
def _finish_kernel(x, kind, scales, mins, L, out, counts):
    nbytes = block_bytes(kind)
    for b in range(cuda.grid(1), x.size // 256, cuda.gridsize(1)):
        i0 = 256 * b
        bad = False
        for i in range(256):
            bad = bad or x[i0 + i] != x[i0 + i]
        if kind == 2:
            over = _q6_k(x, i0, out, b * nbytes, L, scales, 16 * b)
        else:
            over = _q45_k(x, i0, kind, out, b * nbytes, L, scales, mins, 8 * b)
        if bad:
            cuda.atomic.add(counts, 0, 1)
        elif over:
            cuda.atomic.add(counts, 1, 1)


def quantize(x, kind, out):
    """See ``fastq.kernels.cpu.blocks.kquants``: the device float32 ``x`` (whole
    super-blocks of 256) into the device bytes ``out``; returns (super-blocks with a
    NaN, super-blocks whose float16 d or dmin overflows)."""
    nb = x.size // 256
    if nb == 0:
        return 0, 0
    nsub = nb * (16 if kind == 2 else 8)
    scales = cuda.device_array(nsub, np.float32)
    mins = cuda.device_array(nsub, np.float32)
    codes = cuda.device_array(x.size, np.uint8)
    counts = cuda.to_device(np.zeros(2, np.int64))
    blocks, threads = launch(nsub)
    _search_kernel[blocks, threads](x, kind, scales, mins, codes)
    blocks, threads = launch(nb)
    _finish_kernel[blocks, threads](x, kind, scales, mins, codes, out, counts)
    nan, overflow = counts.copy_to_host()
    return int(nan), int(overflow)
