"""Float format conversion kernels on integer bit views (CPU).

Every kernel is generic over the formats: the bit layout comes in the ``params`` array
built by ``fastq.core.formats`` (see the ``E_*`` / ``D_*`` indices there), whose dtype is the
word type the arithmetic runs in (uint32 for float32 sources, uint64 for float64).

Rounding a magnitude ``a`` (the source bits without the sign) to a target with ``s``
fewer mantissa bits:

* normal targets: ``q = (a + bias) >> s`` then rebias the exponent; ``bias`` is
  ``2**(s-1) - 1 + lsb`` (round half to even), 0 (truncate), or the top ``s`` bits of a
  64-bit random number (stochastic).  A carry into the exponent is the correct rounding.
* subnormal targets: ``|x| * 2**(M - emin)`` is exact; ``rint`` (half-even) or
  truncation gives the code.  Stochastic rounding shifts the integer significand instead.

Stochastic rounding adds the top ``s`` bits of a W-bit random word ``r`` (W = 32 for
float32 sources, 64 for float64) before truncating, so P(round up) is the discarded
fraction, resolved to 2**-W.  ``r`` for element ``i`` (C order) is a pure function of
(seed, i): ``lowbias32(lo32(i) ^ k1)``, and for W = 64 that word shifted up 32 ORed with
``lowbias32(lo32(i) ^ k2)``, where ``k1, k2 = stream_keys(key, hi32(i))``.  Thread count,
chunking and backend therefore never change the result.
"""
import functools
import platform

import numpy as np
from numba import config, njit, prange

from ...core import formats as F
from .parallel import BLOCK, SliceCall, chunk_bounds, launch
from .floatbits.rounding import decode_specials, encode_specials, random_word, rounded, stream_keys
from .word import (FP_NEAREST_EVEN, FP_TOWARD_ZERO, add, as_bits, as_float, band,
                    bit_width, bor, float16_bits, float16_value, like,
                    finish_stream, local_block, prefetch_ahead, shl, shr, stream_out, sub,
                    swap_fp_control, wide_vectors)

U64 = np.uint64


@njit(cache=True, nogil=True, inline="always")
def _encode_blocks(src_u, dst, p, sub_scale, rne, with_sub, buf, stream):
    s, half_m1, rebias = p[F.E_SHIFT], p[F.E_HALF_M1], p[F.E_REBIAS]
    ovf_code, norm_min = p[F.E_OVF_CODE], p[F.E_NORM_MIN]
    inf_bits, abs_mask = p[F.E_INF_BITS], p[F.E_ABS_MASK]
    sign_shift, sign_bit = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT]
    for start in range(0, src_u.size, BLOCK):
        prefetch_ahead(src_u, start, BLOCK)
        src_b, out_b = src_u[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        top = like(s, 0)
        for i in range(src_b.size):
            b = src_b[i]
            a = band(b, abs_mask)
            code = rounded(a, s, half_m1, rebias, ovf_code, norm_min, sub_scale, rne,
                            with_sub)
            dst_b[i] = bor(code, band(shr(b, sign_shift), sign_bit))
            top = max(top, a)
        if top >= inf_bits:  # an inf or NaN in the block (rare)
            encode_specials(src_b, dst_b, p)
        if stream:
            stream_out(out_b, dst_b)


@njit(cache=True, nogil=True)
def _encode_slice(src_u, dst, p, sub_scale, rne, stream):
    # Two loops from one body (``with_sub`` a constant in each): where the target's
    # subnormals are the source's own (bfloat16 from float32, ``norm_min == 0``) the
    # float path is dead, and a loop compiled without it runs markedly faster.
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (the float path's rint)
    buf = local_block(dst, BLOCK)
    if p[F.E_NORM_MIN] == 0:
        _encode_blocks(src_u, dst, p, sub_scale, rne, False, buf, stream)
    else:
        _encode_blocks(src_u, dst, p, sub_scale, rne, True, buf, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(cache=True, nogil=True)
def _encode_halved_slice(src_u, dst, p, stream):
    """float32 -> bfloat16 (the top half of the bits: the same exponent field and
    subnormals) rounded half to even, where ``halved_rne`` says so: per element one add
    and shifts, ``(b + 0x7FFF + (b >> 16 & 1)) >> 16`` (a carry out of the mantissa
    steps the exponent, up to inf: no saturation), the sign coming along in the top bit;
    infs and NaNs rewritten as ``encode_specials`` does.  The general loop's bits, with
    no separate sign, clamp or rebias: 1.6x faster on 1M elements in cache."""
    inf_bits, abs_mask = p[F.E_INF_BITS], p[F.E_ABS_MASK]
    half, one, shift = like(inf_bits, 0x7FFF), like(inf_bits, 1), like(inf_bits, 16)
    buf = local_block(dst, BLOCK)
    for start in range(0, src_u.size, BLOCK):
        prefetch_ahead(src_u, start, BLOCK)
        src_b, out_b = src_u[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        top = like(inf_bits, 0)
        for i in range(src_b.size):
            b = src_b[i]
            dst_b[i] = np.uint16(shr(add(add(b, half), band(shr(b, shift), one)), shift))
            top = max(top, band(b, abs_mask))
        if top >= inf_bits:  # an inf or NaN in the block (rare)
            encode_specials(src_b, dst_b, p)
        if stream:
            stream_out(out_b, dst_b)
    finish_stream(stream)


@njit(parallel=True, cache=True, nogil=True)
def _encode_halved_parallel(src_u, dst, p, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        _encode_halved_slice(src_u[start:stop], dst[start:stop], p, stream)


def halved_rne(params, dst, rounding):
    """Whether ``encode`` rounds float32 to the top half of its bits (bfloat16) half to
    even, without saturation: ``_encode_halved_slice`` gives those bits."""
    return (rounding == 1 and params.dtype == np.uint32 and dst.dtype == np.uint16
            and params.size == F.E_LEN and params[F.E_SHIFT] == 16
            and params[F.E_REBIAS] == 0 and params[F.E_NORM_MIN] == 0
            and params[F.E_OVF_CODE] == params[F.E_INF_OUT] == params[F.E_INF_BITS] >> 16)


@njit(cache=True, nogil=True)
def _encode_native16_slice(src_f, src_u, dst, p, control, stream):
    """float32/float64 -> IEEE float16 by the conversion instruction, rounded once as the
    control word says (half to even, or toward zero, which is truncation: a finite
    overflow gives the largest finite value); NaNs as NumPy.  ``src_u``: ``src_f``'s bits."""
    # In 16-bit lanes: the instruction keeps a NaN's sign and top payload bits but
    # sets the quiet bit, where NumPy keeps a signaling NaN signaling.
    nan_base, nan_mask = np.uint16(p[F.E_NAN_BASE]), np.uint16(p[F.E_NAN_MASK])
    nan_min, s = np.uint16(p[F.E_NAN_MIN]), p[F.E_SHIFT]
    inf_code, sign, magnitude = np.uint16(0x7C00), np.uint16(0x8000), np.uint16(0x7FFF)
    saved = swap_fp_control(control)
    buf = local_block(dst, BLOCK)
    for start in range(0, src_u.size, BLOCK):
        prefetch_ahead(src_u, start, BLOCK)
        src_b, out_b = src_u[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        f_b = src_f[start:start + BLOCK]
        top = np.uint16(0)
        for i in range(src_b.size):
            h = float16_bits(f_b[i])
            dst_b[i] = h
            top = max(top, band(h, magnitude))
        if top > inf_code:  # a NaN in the block (rare): patch NaNs to NumPy's bits
            for i in range(src_b.size):
                h = dst_b[i]
                payload = band(np.uint16(shr(src_b[i], s)), nan_mask)
                nan = bor(max(bor(nan_base, payload), nan_min), band(h, sign))
                dst_b[i] = nan if band(h, magnitude) > inf_code else h
        if stream:
            stream_out(out_b, dst_b)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(cache=True, nogil=True)
def _encode_via32_slice(src_f, src_u, dst, p64, p32, rne, stream):
    """float64 -> a format no wider than float32 in range whose subnormals are float32's
    (bfloat16), by the conversion instruction toward zero with the inexact bit ORed in
    (round to odd: float32 keeps 16 more bits than the target everywhere, so the second
    rounding, ``rounded`` on float32 bits, is the correctly rounded one); ``p32`` rounds
    float32 bits to the target.  A finite overflow gives FLT_MAX, which rounds on as the
    target's overflow does.  Infs and NaNs take ``p64``'s codes, in blocks that hold one."""
    s, half_m1, rebias = p32[F.E_SHIFT], p32[F.E_HALF_M1], p32[F.E_REBIAS]
    ovf_code, abs_mask, inf_bits = p32[F.E_OVF_CODE], p32[F.E_ABS_MASK], p32[F.E_INF_BITS]
    sign_shift, sign_bit = p32[F.E_SIGN_SHIFT], p32[F.E_SIGN_BIT]
    wide_vectors()
    saved = swap_fp_control(np.uint32(FP_TOWARD_ZERO))
    buf = local_block(dst, BLOCK)
    for start in range(0, src_u.size, BLOCK):
        prefetch_ahead(src_u, start, BLOCK)
        src_b, out_b = src_u[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        f_b = src_f[start:start + BLOCK]
        top = np.uint32(0)
        for i in range(src_b.size):
            d = f_b[i]
            f = np.float32(d)  # toward zero
            w = bor(as_bits(f), np.uint32(np.float64(f) != d))
            a = band(w, abs_mask)
            code = rounded(a, s, half_m1, rebias, ovf_code, like(s, 0), np.float32(1), rne, False)
            dst_b[i] = bor(code, band(shr(w, sign_shift), sign_bit))
            top = max(top, a)
        if top >= inf_bits:
            encode_specials(src_b, dst_b, p64)
        if stream:
            stream_out(out_b, dst_b)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(cache=True, nogil=True, inline="always")
def _stochastic_blocks(src_u, dst, p, key, offset, with_sub, buf, stream):
    s, rebias, norm_min = p[F.E_SHIFT], p[F.E_REBIAS], p[F.E_NORM_MIN]
    norm_exp, mant_bits = p[F.E_NORM_EXP], p[F.E_MANT_BITS]
    ovf_code, inf_bits, abs_mask = p[F.E_OVF_CODE], p[F.E_INF_BITS], p[F.E_ABS_MASK]
    sign_shift, sign_bit = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT]
    one = like(s, 1)
    width = like(s, bit_width(s))
    top = sub(width, one)  # largest legal shift
    mant_mask = sub(shl(one, mant_bits), one)
    for start in range(0, src_u.size, BLOCK):
        prefetch_ahead(src_u, start, BLOCK)
        base = U64(offset + start)  # blocks never straddle a multiple of 2**32
        k1, k2 = stream_keys(key, base >> U64(32))
        lo = np.uint32(base & U64(0xFFFFFFFF))
        src_b, out_b = src_u[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        smallest, largest = abs_mask, like(s, 0)
        for i in range(src_b.size):
            b = src_b[i]
            a = band(b, abs_mask)
            r = random_word(a, add(lo, np.uint32(i)), k1, k2)
            code = min(sub(shr(add(a, shr(r, sub(width, s))), s), rebias), ovf_code)
            dst_b[i] = bor(code, band(shr(b, sign_shift), sign_bit))
            smallest, largest = min(smallest, a), max(largest, a)
        if with_sub and smallest < norm_min:  # below the target's normals (a few blocks):
            for i in range(src_b.size):  # shift the significand by a per-element amount
                b = src_b[i]
                a = band(b, abs_mask)
                r = random_word(a, add(lo, np.uint32(i)), k1, k2)
                e = shr(a, mant_bits)
                m = bor(band(a, mant_mask), shl(like(a, e != 0), mant_bits))
                sh = sub(add(s, norm_exp), max(e, one))  # wraps around for normals (unused)
                sh = min(max(sh, one), like(a, 4096))
                m = shr(m, min(sub(sh, min(sh, top)), top))  # keep the top bits if sh > top
                sh = min(sh, top)
                code = shr(add(m, shr(r, sub(width, sh))), sh)
                code = bor(code, band(shr(b, sign_shift), sign_bit))
                dst_b[i] = code if a < norm_min else dst_b[i]
        if largest >= inf_bits:  # an inf or NaN in the block (rare)
            encode_specials(src_b, dst_b, p)
        if stream:
            stream_out(out_b, dst_b)


@njit(cache=True, nogil=True)
def _encode_stochastic_slice(src_u, dst, p, key, offset, stream):
    wide_vectors()  # (the hash is most of the work)
    buf = local_block(dst, BLOCK)
    if p[F.E_NORM_MIN] == 0:  # (bfloat16 from float32: no subnormal path)
        _stochastic_blocks(src_u, dst, p, key, offset, False, buf, stream)
    else:
        _stochastic_blocks(src_u, dst, p, key, offset, True, buf, stream)
    finish_stream(stream)


@njit(cache=True, nogil=True, inline="always")
def _decode_blocks(src, dst, p, sub_magic, with_sub, buf, stream):
    shift, rebias, sub_lim = p[F.D_SHIFT], p[F.D_REBIAS], p[F.D_SUB_LIM]
    one_exp = p[F.D_ONE_EXP]
    special_min, abs_mask = p[F.D_SPECIAL_MIN], p[F.D_ABS_MASK]
    sign_mask, sign_shift = p[F.D_SIGN_MASK], p[F.D_SIGN_SHIFT]
    for start in range(0, src.size, BLOCK):
        prefetch_ahead(src, start, BLOCK)
        src_b, out_b = src[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        top = like(shift, 0)
        for i in range(src_b.size):
            h = like(shift, src_b[i])
            a = band(h, abs_mask)
            bits = add(shl(a, shift), rebias)
            if with_sub:
                sub_bits = as_bits(as_float(add(bits, one_exp)) - sub_magic)  # exact
                bits = sub_bits if a < sub_lim else bits
            dst_b[i] = bor(bits, shl(band(h, sign_mask), sign_shift))
            top = max(top, a)
        if top >= special_min:  # an inf or NaN in the block (rare)
            decode_specials(src_b, dst_b, p)
        if stream:
            stream_out(out_b, dst_b)


@njit(cache=True, nogil=True)
def _decode_slice(src, dst, p, sub_magic, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (exact, if not flushed to 0)
    buf = local_block(dst, BLOCK)
    if p[F.D_SUB_LIM] == 0:  # (bfloat16 -> float32: no subnormal is normal in the target)
        _decode_blocks(src, dst, p, sub_magic, False, buf, stream)
    else:
        _decode_blocks(src, dst, p, sub_magic, True, buf, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(cache=True, nogil=True)
def _decode_native16_slice(src, dst, p, stream):
    """float16 -> float32 bits by the conversion instruction; inf and NaN as NumPy."""
    special_min = p[F.D_SPECIAL_MIN]
    magnitude = np.uint16(p[F.D_ABS_MASK])
    buf = local_block(dst, BLOCK)
    for start in range(0, src.size, BLOCK):
        prefetch_ahead(src, start, BLOCK)
        src_b, out_b = src[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        top = np.uint16(0)
        for i in range(src_b.size):
            h = src_b[i]
            dst_b[i] = as_bits(float16_value(h))
            top = max(top, band(h, magnitude))
        if top >= special_min:  # an inf or NaN in the block (rare)
            decode_specials(src_b, dst_b, p)
        if stream:
            stream_out(out_b, dst_b)
    finish_stream(stream)


@njit(parallel=True, cache=True, nogil=True)
def _decode_native16_parallel(src, dst, p, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _decode_native16_slice(src[start:stop], dst[start:stop], p, stream)


@njit(parallel=True, cache=True, nogil=True)
def _encode_parallel(src_u, dst, p, sub_scale, rne, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        _encode_slice(src_u[start:stop], dst[start:stop], p, sub_scale, rne, stream)


@njit(parallel=True, cache=True, nogil=True)
def _encode_native16_parallel(src_f, src_u, dst, p, control, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_f.size, c, nchunks)
        _encode_native16_slice(src_f[start:stop], src_u[start:stop], dst[start:stop], p,
                               control, stream)


@njit(parallel=True, cache=True, nogil=True)
def _encode_via32_parallel(src_f, src_u, dst, p64, p32, rne, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_f.size, c, nchunks)
        _encode_via32_slice(src_f[start:stop], src_u[start:stop], dst[start:stop], p64, p32,
                            rne, stream)


@njit(parallel=True, cache=True, nogil=True)
def _encode_stochastic_parallel(src_u, dst, p, key, offset, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        _encode_stochastic_slice(src_u[start:stop], dst[start:stop], p, key, offset + start,
                                 stream)


@njit(parallel=True, cache=True, nogil=True)
def _decode_parallel(src, dst, p, sub_magic, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _decode_slice(src[start:stop], dst[start:stop], p, sub_magic, stream)


def encode(src_f, dst, params, sub_scale, rounding, key):
    """Round the 1-D contiguous float array ``src_f`` into the bits ``dst`` (1-D, same size).

    ``params`` has the dtype of ``src_f``'s bits; ``rounding``: 0 truncate,
    1 nearest-even, 2 stochastic with the 64-bit ``key``.  float32/float64 -> IEEE float16
    (truncated or half to even, without saturation) runs on the conversion instruction
    where there is one.
    """
    src_u = src_f.view(params.dtype)
    control = _native_control(params, dst, rounding)
    if control is not None:
        launch(_encode_native16_slice, _encode_native16_parallel, src_f, dst,
               (src_f, src_u, dst, params, control))
    elif rounding != 2 and params.size == 2 * F.E_LEN:  # float64 -> bfloat16
        p32 = params[F.E_LEN:].astype(np.uint32)
        launch(_encode_via32_slice, _encode_via32_parallel, src_f, dst,
               (src_f, src_u, dst, params, p32, bool(rounding)))
    elif rounding == 2:
        launch(_encode_stochastic_slice, _encode_stochastic_parallel, src_f, dst,
               (src_u, dst, params, key, 0))
    elif halved_rne(params, dst, rounding):  # float32 -> bfloat16
        launch(_encode_halved_slice, _encode_halved_parallel, src_f, dst, (src_u, dst, params))
    else:
        launch(_encode_slice, _encode_parallel, src_f, dst,
               (src_u, dst, params, sub_scale, bool(rounding)))


def _native_control(params, half, rounding):
    """The control word for ``_encode_native16_slice`` when it computes this encode
    exactly (float32/float64 -> IEEE float16, truncate or half to even, no saturation, on
    a CPU with the instruction), else None."""
    if (rounding in (0, 1) and params[F.E_INF_OUT] == 0x7C00
            and _float16_pair(params, half, params[F.E_SHIFT])
            and native_float16(8 * params.itemsize)):
        return np.uint32(FP_NEAREST_EVEN if rounding == 1 else FP_TOWARD_ZERO)
    return None


def _float16_pair(params, half, shift):
    """Whether ``params`` convert between float32 or float64 and IEEE float16 (the bits
    ``half``): 32-bit words 13 mantissa bits apart, or 64-bit words 42 apart, which no
    other pair of formats is.  Those casts run on conversion instructions where they exist."""
    return half.dtype == np.uint16 and (params.dtype, shift) in ((np.uint32, 13),
                                                                 (np.uint64, 42))


@functools.cache
def native_float16(source_bits=32):
    """Whether compiled code converts float32 (``source_bits`` 32) or float64 (64) to and
    from float16 with one instruction that rounds exactly as the integer kernel does, when
    Numba compiles for this CPU: x86 with F16C for float32, AVX512-FP16 for float64.
    (Elsewhere LLVM would call a soft-float routine Numba may not link.)"""
    import llvmlite.binding as llvm
    feature = {32: "f16c", 64: "avx512fp16"}[source_bits]
    return (platform.machine().lower() in ("x86_64", "amd64")
            and config.CPU_NAME in (None, "host") and not config.CPU_FEATURES
            and bool(llvm.get_host_cpu_features().get(feature)))


def decode(src, dst, params, sub_magic):
    """Widen the 1-D bits ``src`` exactly into the bits ``dst`` (1-D, same size)."""
    if (params.dtype == np.uint32 and _float16_pair(params, src, params[F.D_SHIFT])
            and native_float16()):  # float16 -> float32
        launch(_decode_native16_slice, _decode_native16_parallel, src, dst,
               (src, dst, params))
    else:
        launch(_decode_slice, _decode_parallel, src, dst, (src, dst, params, sub_magic))


@njit(cache=True, nogil=True)
def _widen_slice(src, dst, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (no denormals-are-zero)
    buf = local_block(dst, BLOCK)
    for start in range(0, src.size, BLOCK):
        prefetch_ahead(src, start, BLOCK)
        src_b, out_b = src[start:start + BLOCK], dst[start:start + BLOCK]
        dst_b = buf[:out_b.size] if stream else out_b
        for i in range(src_b.size):
            dst_b[i] = np.float64(src_b[i])
        if stream:
            stream_out(out_b, dst_b)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _widen_parallel(src, dst, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _widen_slice(src[start:stop], dst[start:stop], stream)


def copyto(dst, src):
    """``dst[...] = src`` for 1-D contiguous arrays: a copy, or float32 -> float64 as x86
    widens (exact; a signaling NaN comes out quiet with its payload, as in NumPy)."""
    if dst.dtype == src.dtype:
        np.copyto(dst, src)
    else:
        launch(_widen_slice, _widen_parallel, src, dst, (src, dst))


def planned_encode(dst_word, params, sub_scale, rounding):
    """The ``SliceCall`` (``fastq.kernels.cpu.parallel``) of ``encode`` from floats
    whose bits are ``params.dtype`` into bits of ``dst_word``, running the kernels
    ``encode`` chooses; None for stochastic rounding."""
    control = _native_control(params, np.empty(0, dst_word), rounding)
    src_word = params.dtype
    if control is not None:
        return SliceCall(_encode_native16_slice, _encode_native16_parallel, src_word,
                         dst_word, True, (params, control))
    if rounding != 2 and params.size == 2 * F.E_LEN:  # float64 -> bfloat16
        return SliceCall(_encode_via32_slice, _encode_via32_parallel, src_word, dst_word,
                         True, (params, params[F.E_LEN:].astype(np.uint32), bool(rounding)))
    if rounding == 2:
        return None
    if halved_rne(params, np.empty(0, dst_word), rounding):
        return SliceCall(_encode_halved_slice, _encode_halved_parallel, src_word, dst_word,
                         False, (params,))
    return SliceCall(_encode_slice, _encode_parallel, src_word, dst_word, False,
                     (params, sub_scale, bool(rounding)))


def planned_decode(src_word, dst_word, params, sub_magic):
    """The ``SliceCall`` (``fastq.kernels.cpu.parallel``) of ``decode`` of the bits
    ``src_word`` into bits of ``dst_word``, running the kernels ``decode`` chooses."""
    if (params.dtype == np.uint32 and _float16_pair(params, np.empty(0, src_word),
                                                    params[F.D_SHIFT])
            and native_float16()):
        return SliceCall(_decode_native16_slice, _decode_native16_parallel, src_word,
                         dst_word, False, (params,))
    return SliceCall(_decode_slice, _decode_parallel, src_word, dst_word, False,
                     (params, sub_magic))
