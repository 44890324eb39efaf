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

The independent sub-blocks of up to 4 super-blocks (64; q3_K 8, 128) are searched side by side as
vector lanes, each lane C's algorithm step for step, C's branches as per-lane selects
(``fastq.kernels.cpu.blocks.kquant.search_low``).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .....runtime.threads import parallel_region
from ...parallel import n_chunks, streams
from ...word import get_half, half_bits, local_block, put_half, store_fence, unmanaged
from .. import lanes as V
from ..ggml_lanes import bit_lanes, put, q3_code_lanes
from .search import clamp, nearest_int
from .search_low import make_q3_lanes, make_qkx2_mad_lanes, requantize_lanes


@njit(cache=True, nogil=True, inline="always")
def block_bytes(kind):
    """Bytes of a super-block: q2_K 84, q3_K 110."""
    return 84 if kind == 0 else 110


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


@njit(cache=True, nogil=True, inline="always")
def _pack_q3_high(L, out, o):
    """q3_K's hmask: bit ``j // 32`` of byte ``j % 32`` is the high bit of code ``j``
    (C: ``if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }``); 16 bytes a vector, the bits
    summed as whole-number floats (exact)."""
    for m0 in range(0, 32, 16):
        h = V.splat(np.float32(0.0))
        for bit in range(8):
            h = V.add(h, V.mul(bit_lanes(L, 32 * bit + m0, 2, 1),
                               V.splat(np.float32(1 << bit))))
        V.store_bytes(out, o + m0, h)


@njit(cache=True, nogil=True, inline="always")
def _pack_2bit(L, out, q):
    """``qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6`` of the
    low 2 bits of the codes ``L``; 16 bytes a vector, as ``_pack_q3_high``."""
    for j in range(0, 256, 128):
        for l0 in range(0, 32, 16):
            v = V.splat(np.float32(0.0))
            for t in range(4):
                v = V.add(v, V.mul(bit_lanes(L, j + l0 + 32 * t, 0, 3),
                                   V.splat(np.float32(1 << (2 * t)))))
            V.store_bytes(out, q + j // 4 + l0, v)


@njit(cache=True, nogil=True, inline="always")
def _q3_scale(data, sb, j):
    """The signed 6-bit scale of q3_K sub-block ``j`` (-32..31) from the 12 bytes at
    ``sb``: low 4 bits in byte ``j`` (``j - 8``, high nibble, from 8), high 2 bits at
    ``2 * (j // 4)`` of byte ``8 + j % 4``."""
    low = (np.int64(data[sb + j]) & 0xF) if j < 8 else (np.int64(data[sb + j - 8]) >> 4)
    return (low | (((np.int64(data[sb + 8 + j % 4]) >> (2 * (j // 4))) & 3) << 4)) - 32


@intrinsic
def _transpose_tile(typingctx, src, s0, sstride, dst, d0, dstride):
    """``dst[d0 + dstride * c + r] = src[s0 + sstride * r + c]`` for ``r, c`` in 0..15
    (float32 or uint8 arrays of one dtype): 16 vector loads, four rounds of 16 shuffles
    (round ``k`` swaps bit ``k`` of the row and the column index), 16 vector stores,
    where element by element takes 256 scalar loads and stores."""
    if isinstance(src, types.Array) and isinstance(dst, types.Array) \
            and src.dtype == dst.dtype and src.dtype in (types.float32, types.uint8):
        def codegen(context, builder, sig, args):
            elem = context.get_data_type(sig.args[0].dtype)
            vt = ir.VectorType(elem, 16)
            i64 = ir.IntType(64)

            def address(arrty, arr, start, stride, r):
                data = context.make_array(arrty)(context, builder, arr).data
                at = builder.add(start, builder.mul(stride, i64(r)))
                return builder.bitcast(builder.gep(data, [at]), vt.as_pointer())
            s0_, ss = [context.cast(builder, a, t, types.int64)
                       for a, t in zip(args[1:3], sig.args[1:3])]
            d0_, ds = [context.cast(builder, a, t, types.int64)
                       for a, t in zip(args[4:6], sig.args[4:6])]
            rows = [builder.load(address(sig.args[0], args[0], s0_, ss, r), align=1)
                    for r in range(16)]
            i32v = ir.VectorType(ir.IntType(32), 16)
            for k in range(4):
                b = 1 << k
                low = ir.Constant(i32v, [j if not j & b else 16 + (j ^ b) for j in range(16)])
                high = ir.Constant(i32v, [(j ^ b) if not j & b else 16 + j for j in range(16)])
                for r in range(16):
                    if r & b:
                        continue
                    a, c = rows[r], rows[r | b]
                    rows[r] = builder.shuffle_vector(a, c, low)
                    rows[r | b] = builder.shuffle_vector(a, c, high)
            for r in range(16):
                builder.store(rows[r], address(sig.args[3], args[3], d0_, ds, r), align=1)
            return context.get_dummy_value()
        return types.none(src, s0, sstride, dst, d0, dstride), codegen
    return None


@njit(cache=True, nogil=True, inline="always")
def _block_flags(x, i0):
    """Whether the super-block at ``i0`` holds a NaN, and (when it holds none) whether it
    holds an inf: 16-lane vectors, a count of the NaN lanes and the largest magnitude
    of the others."""
    zero, one = V.splat(np.float32(0.0)), V.splat(np.float32(1.0))
    nans, top = zero, zero
    for j in range(16):
        v = V.load(x, i0 + 16 * j)
        nans = V.add(nans, V.select(V.eq(v, v), zero, one))
        top = V.maximum(V.fabs(v), top)  # (a NaN lane keeps ``top``)
    bad = not V.every(V.eq(nans, zero))
    return bad, not V.every(V.lt(top, V.splat(np.float32(np.inf))))


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize_blocks(x, kind, b0, b1, out):
    """Super-blocks ``b0..b1``; returns (NaN blocks, overflowing blocks).  A block with
    an inf counts as overflowing even where C's arithmetic writes finite scales (q3_K's
    weights ``x^2`` turn inf into NaN sums, which lose the sub-block)."""
    x, out = unmanaged(x), unmanaged(out)
    L = local_block(out, 256)
    # q2_K: 4 super-blocks (64 lanes) at a time; q3_K 8 (128), so that the lanes its
    # search gathers after the first pass (1 in 5) fill two vectors, whose steps overlap
    per = 4 if kind == 0 else 8
    xt, wt, lt = local_block(x, 2048), local_block(x, 1024), local_block(out, 2048)
    g_scales, g_mins = local_block(x, 128), local_block(x, 64)
    dl, ml = local_block(x, 128), local_block(x, 128)
    nbytes = block_bytes(kind)
    nan = ovf = 0
    for g0 in range(b0, b1, per):
        ns = min(per, b1 - g0)
        nk = 16 * ns
        for s in range(ns):  # lane k: sub-block k % 16 of super-block g0 + k // 16
            _transpose_tile(x, (g0 + s) * 256, 16, xt, 16 * s, nk)
        if kind == 0:  # (q2_K's weights |x|)
            for i in range(nk * 16):
                wt[i] = abs(xt[i])
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
            requantize_lanes(xt, lt, dl, ml, 0, 3, 0, nk)
        else:
            requantize_lanes(xt, lt, dl, ml, -4, 3, 4, nk)
        for s in range(ns):
            o = (g0 + s) * nbytes
            _transpose_tile(lt, 16 * s, nk, L, 0, 16)
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
def _dequantize_blocks(data, kind, b0, b1, out, stream):
    """``dequantize_row_q2_K`` / ``dequantize_row_q3_K``: q2_K ``(d * sc) * q - dmin *
    m``, q3_K ``(d * sc) * (q - 4)``, in float32 (``gguf.quants``' order).  Sub-block
    ``j`` (elements ``16 j..``) has its 2-bit codes at bit ``2 * (j % 8 // 2)`` of the
    code bytes ``32 * (j // 8) + 16 * (j % 2)..`` and q3_K's high bits at bit ``j // 2``
    of hmask bytes ``16 * (j % 2)..``; a sub-block is one 16-lane vector.)"""
    data, out = unmanaged(data), unmanaged(out)
    if kind == 0:  # (``stream`` a literal in each copy: see ``ggml_lanes.put``)
        if stream:
            _dequantize_q2(data, b0, b1, out, True)
        else:
            _dequantize_q2(data, b0, b1, out, False)
    elif stream:
        _dequantize_q3(data, b0, b1, out, True)
    else:
        _dequantize_q3(data, b0, b1, out, False)
    if stream:
        store_fence()


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _dequantize_q2(data, b0, b1, out, stream):
    """A sub-block's 16 codes are one vector (``bit_lanes``)."""
    for b in range(b0, b1):
        o, y = b * 84, b * 256
        d_all = get_half(data, o + 80)
        m_all = get_half(data, o + 82)
        for j in range(16):
            sc = np.int64(data[o + j])
            dl = V.splat(d_all * np.float32(sc & 0xF))
            ml = V.splat(m_all * np.float32(sc >> 4))
            q = o + 16 + 32 * (j // 8) + 16 * (j % 2)
            code = bit_lanes(data, q, 2 * ((j % 8) // 2), 3)
            put(out, stream, y + 16 * j, V.sub(V.mul(dl, code), ml))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _dequantize_q3(data, b0, b1, out, stream):
    """A sub-block's 16 codes are one vector (``q3_code_lanes``)."""
    for b in range(b0, b1):
        o, y = b * 110, b * 256
        d_all = get_half(data, o + 108)
        for j in range(16):
            dl = V.splat(d_all * np.float32(_q3_scale(data, o + 96, j)))
            q = o + 32 + 32 * (j // 8) + 16 * (j % 2)
            h = o + 16 * (j % 2)
            code = q3_code_lanes(data, q, 2 * ((j % 8) // 2), h, j // 2)
            put(out, stream, y + 16 * j, V.mul(dl, code))


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(data, kind, out, nchunks, stream):
    nb = out.size // 256
    for c in prange(nchunks):
        _dequantize_blocks(data, kind, c * nb // nchunks, (c + 1) * nb // nchunks, out,
                           stream)


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
    # (non-temporal stores past the last-level cache, as ``blocks.ggml.dequantize``)
    stream = streams(data, out) and out.ctypes.data % 16 == 0
    nchunks = n_chunks(out.size) if out.size >= (1 << 20) else 1
    if nchunks == 1:
        _dequantize_blocks(data, kind, 0, nb, out, stream)
        return
    with parallel_region():
        _dequantize_parallel(data, kind, out, nchunks, stream)
