"""Float cast loops on the CPU's conversion instructions (CPU), for the casts where
``fastq.kernels.cpu.cast`` finds they give the integer kernels' bits: float32/float64
-> IEEE float16 in the rounding of the FP control word and float16 -> float32 (F16C,
AVX512-FP16: ``cast.native_float16``), NaNs patched to NumPy's bits; float32 -> float64
as x86 widens.
"""
import numpy as np
from numba import njit, prange

from ....core import formats as F
from ..parallel import BLOCK, chunk_bounds
from ..word import (FP_NEAREST_EVEN, as_bits, band, bor, finish_stream, float16_bits,
                    float16_value, local_block, shr, swap_fp_control)
from .blocks import block_step, block_views, block_written
from .rounding import decode_specials


@njit(cache=True, nogil=True)
def encode_native16_slice(src_f, src_u, dst, p, control, stream):
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
    step = block_step(src_u.size, stream)
    for start in range(0, src_u.size, step):
        src_b, out_b, dst_b = block_views(src_u, dst, buf, start, stream, step)
        f_b = src_f[start:start + step]
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
        block_written(out_b, dst_b, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def encode_native16_parallel(src_f, src_u, dst, p, control, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_f.size, c, nchunks)
        encode_native16_slice(src_f[start:stop], src_u[start:stop], dst[start:stop], p,
                               control, stream)


@njit(cache=True, nogil=True)
def decode_native16_slice(src, dst, p, stream):
    """float16 -> float32 bits by the conversion instruction; inf and NaN as NumPy."""
    special_min = p[F.D_SPECIAL_MIN]
    magnitude = np.uint16(p[F.D_ABS_MASK])
    buf = local_block(dst, BLOCK)
    step = block_step(src.size, stream)
    for start in range(0, src.size, step):
        src_b, out_b, dst_b = block_views(src, dst, buf, start, stream, step)
        top = np.uint16(0)
        for i in range(src_b.size):
            h = src_b[i]
            dst_b[i] = as_bits(float16_value(h))
            top = max(top, band(h, magnitude))
        if top >= special_min:  # an inf or NaN in the block (rare)
            decode_specials(src_b, dst_b, p)
        block_written(out_b, dst_b, stream)
    finish_stream(stream)


@njit(parallel=True, cache=True, nogil=True)
def decode_native16_parallel(src, dst, p, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        decode_native16_slice(src[start:stop], dst[start:stop], p, stream)


@njit(cache=True, nogil=True)
def widen_slice(src, dst, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (no denormals-are-zero)
    buf = local_block(dst, BLOCK)
    step = block_step(src.size, stream)
    for start in range(0, src.size, step):
        src_b, out_b, dst_b = block_views(src, dst, buf, start, stream, step)
        for i in range(src_b.size):
            dst_b[i] = np.float64(src_b[i])
        block_written(out_b, dst_b, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def widen_parallel(src, dst, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        widen_slice(src[start:stop], dst[start:stop], stream)
