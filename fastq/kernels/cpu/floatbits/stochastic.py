"""The stochastic-rounding encode loop of the float casts (CPU), by the rule and the
random stream of ``rounding`` (see its docstring): on normal targets the top ``s`` bits
of element ``i``'s random word added before the truncating shift; below the target's
normals the integer significand shifted by a per-element amount, the random bits added
at that shift.  ``offset``: the index of the slice's first element in the whole array,
so that chunking never changes an element's word.
"""
import numpy as np
from numba import njit, prange

from ....core import formats as F
from ..parallel import BLOCK, chunk_bounds
from ..word import (add, band, bit_width, bor, finish_stream, like, local_block, shl, shr,
                    sub, wide_vectors)
from .blocks import block_views, block_written
from .rounding import encode_specials, random_word, stream_keys

U64 = np.uint64


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
    # (blocks of BLOCK even in cache, unlike the other casts: the counter ``lo + i`` must
    # not wrap within a block, the subnormal pass runs only on blocks that need it, and
    # the hash, not the per-block checks, is the work)
    for start in range(0, src_u.size, BLOCK):
        src_b, out_b, dst_b = block_views(src_u, dst, buf, start, stream)
        base = U64(offset + start)  # blocks never straddle a multiple of 2**32
        k1, k2 = stream_keys(key, base >> U64(32))
        lo = np.uint32(base & U64(0xFFFFFFFF))
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
        block_written(out_b, dst_b, stream)


@njit(cache=True, nogil=True)
def encode_stochastic_slice(src_u, dst, p, key, offset, stream):
    wide_vectors()  # (the hash is most of the work)
    buf = local_block(dst, BLOCK)
    if p[F.E_NORM_MIN] == 0:  # (bfloat16 from float32: no subnormal path)
        _stochastic_blocks(src_u, dst, p, key, offset, False, buf, stream)
    else:
        _stochastic_blocks(src_u, dst, p, key, offset, True, buf, stream)
    finish_stream(stream)


@njit(parallel=True, cache=True, nogil=True)
def encode_stochastic_parallel(src_u, dst, p, key, offset, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        encode_stochastic_slice(src_u[start:stop], dst[start:stop], p, key, offset + start,
                                 stream)
