"""Encode loops of the float casts rounded toward zero or half to even (CPU): the
generic loop over ``rounding.rounded``, and the faster loops of two casts that allow
them, float32 -> bfloat16 half to even (``encode_halved_slice``: the top half of the
bits) and float64 -> a format with float32's subnormals (``encode_via32_slice``: round
to odd through float32).  ``fastq.kernels.cpu.cast`` picks the loop.

A ``*_slice`` kernel runs in the calling thread, its ``*_parallel`` twin on ``nchunks``
chunks (``fastq.kernels.cpu.parallel.chunk_bounds``); ``stream``: write the output with
non-temporal stores (``fastq.kernels.cpu.word.stream_out``).
"""
import numpy as np
from numba import njit, prange

from ....core import formats as F
from ..parallel import BLOCK, chunk_bounds
from ..word import (FP_NEAREST_EVEN, FP_TOWARD_ZERO, add, as_bits, band, bor,
                    finish_stream, like, local_block, shr, swap_fp_control, wide_vectors)
from .blocks import block_step, block_views, block_written
from .rounding import encode_specials, rounded


@njit(cache=True, nogil=True, inline="always")
def _encode_blocks(src_u, dst, p, sub_scale, rne, with_sub, buf, stream):
    s, half_m1, rebias = p[F.E_SHIFT], p[F.E_HALF_M1], p[F.E_REBIAS]
    ovf_code, norm_min = p[F.E_OVF_CODE], p[F.E_NORM_MIN]
    inf_bits, abs_mask = p[F.E_INF_BITS], p[F.E_ABS_MASK]
    sign_shift, sign_bit = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT]
    step = block_step(src_u.size, stream)
    for start in range(0, src_u.size, step):
        src_b, out_b, dst_b = block_views(src_u, dst, buf, start, stream, step)
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
        block_written(out_b, dst_b, stream)


@njit(cache=True, nogil=True)
def encode_slice(src_u, dst, p, sub_scale, rne, stream):
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


@njit(parallel=True, cache=True, nogil=True)
def encode_parallel(src_u, dst, p, sub_scale, rne, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        encode_slice(src_u[start:stop], dst[start:stop], p, sub_scale, rne, stream)


@njit(cache=True, nogil=True)
def encode_halved_slice(src_u, dst, p, stream):
    """float32 -> bfloat16 (the top half of the bits: the same exponent field and
    subnormals) rounded half to even, where ``halved_rne`` says so: per element one add
    and shifts, ``(b + 0x7FFF + (b >> 16 & 1)) >> 16`` (a carry out of the mantissa
    steps the exponent, up to inf: no saturation), the sign coming along in the top bit;
    infs and NaNs rewritten as ``encode_specials`` does.  The general loop's bits, with
    no separate sign, clamp or rebias: 1.6x faster on 1M elements in cache."""
    inf_bits, abs_mask = p[F.E_INF_BITS], p[F.E_ABS_MASK]
    half, one, shift = like(inf_bits, 0x7FFF), like(inf_bits, 1), like(inf_bits, 16)
    buf = local_block(dst, BLOCK)
    step = block_step(src_u.size, stream)
    for start in range(0, src_u.size, step):
        src_b, out_b, dst_b = block_views(src_u, dst, buf, start, stream, step)
        top = like(inf_bits, 0)
        for i in range(src_b.size):
            b = src_b[i]
            dst_b[i] = np.uint16(shr(add(add(b, half), band(shr(b, shift), one)), shift))
            top = max(top, band(b, abs_mask))
        if top >= inf_bits:  # an inf or NaN in the block (rare)
            encode_specials(src_b, dst_b, p)
        block_written(out_b, dst_b, stream)
    finish_stream(stream)


@njit(parallel=True, cache=True, nogil=True)
def encode_halved_parallel(src_u, dst, p, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        encode_halved_slice(src_u[start:stop], dst[start:stop], p, stream)


@njit(cache=True, nogil=True)
def encode_via32_slice(src_f, src_u, dst, p64, p32, rne, stream):
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
    step = block_step(src_u.size, stream)
    for start in range(0, src_u.size, step):
        src_b, out_b, dst_b = block_views(src_u, dst, buf, start, stream, step)
        f_b = src_f[start:start + step]
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
        block_written(out_b, dst_b, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def encode_via32_parallel(src_f, src_u, dst, p64, p32, rne, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_f.size, c, nchunks)
        encode_via32_slice(src_f[start:stop], src_u[start:stop], dst[start:stop], p64, p32,
                            rne, stream)
