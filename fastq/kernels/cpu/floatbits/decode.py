"""The decode loop of the float casts (CPU): a narrower format's bits widened exactly into
float32 or float64 bits, the magnitude shifted up and rebiased (a source subnormal
that is normal in the target through one exact float subtraction), infs and NaNs as
NumPy widens them (``rounding.decode_specials``).
"""
import numpy as np
from numba import njit, prange

from ....core import formats as F
from ..parallel import BLOCK, chunk_bounds
from ..word import (FP_NEAREST_EVEN, add, as_bits, as_float, band, bor, finish_stream,
                    like, local_block, shl, swap_fp_control)
from .blocks import block_step, block_views, block_written
from .rounding import decode_specials


@njit(cache=True, nogil=True, inline="always")
def _decode_blocks(src, dst, p, sub_magic, with_sub, buf, stream):
    shift, rebias, sub_lim = p[F.D_SHIFT], p[F.D_REBIAS], p[F.D_SUB_LIM]
    one_exp = p[F.D_ONE_EXP]
    special_min, abs_mask = p[F.D_SPECIAL_MIN], p[F.D_ABS_MASK]
    sign_mask, sign_shift = p[F.D_SIGN_MASK], p[F.D_SIGN_SHIFT]
    step = block_step(src.size, stream)
    for start in range(0, src.size, step):
        src_b, out_b, dst_b = block_views(src, dst, buf, start, stream, step)
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
        block_written(out_b, dst_b, stream)


@njit(cache=True, nogil=True)
def decode_slice(src, dst, p, sub_magic, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (exact, if not flushed to 0)
    buf = local_block(dst, BLOCK)
    if p[F.D_SUB_LIM] == 0:  # (bfloat16 -> float32: no subnormal is normal in the target)
        _decode_blocks(src, dst, p, sub_magic, False, buf, stream)
    else:
        _decode_blocks(src, dst, p, sub_magic, True, buf, stream)
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def decode_parallel(src, dst, p, sub_magic, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        decode_slice(src[start:stop], dst[start:stop], p, sub_magic, stream)
