"""Float format conversion kernels on integer bit views (CPU).

Every kernel is generic over the formats: the bit layout comes in the ``params`` array
built by ``fastq._formats`` (see the ``E_*`` / ``D_*`` indices there), whose dtype is the
word type the arithmetic runs in (uint32 for float32 sources, uint64 for float64).

Rounding a magnitude ``a`` (the source bits without the sign) to a target with ``s``
fewer mantissa bits:

* normal targets: ``q = (a + bias) >> s`` then rebias the exponent; ``bias`` is
  ``2**(s-1) - 1 + lsb`` (round half to even), 0 (truncate), or the top ``s`` bits of a
  64-bit random number (stochastic).  A carry into the exponent is the correct rounding.
* subnormal targets: ``|x| * 2**(M - emin)`` is exact; ``rint`` (half-even) or
  truncation gives the code.  Stochastic rounding shifts the integer significand instead.
"""
import numpy as np
from numba import njit, prange

from .. import _formats as F
from .._threads import parallel_region
from ._parallel import SERIAL_BELOW, chunk_bounds, n_chunks
from ._word import add, band, bor, like, shl, shr, sub

U64 = np.uint64


@njit(cache=True)
def mix64(key, i):
    """SplitMix64 of ``key + (i + 1) * golden``: 64 random bits for element ``i``."""
    z = key + (i + U64(1)) * U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


@njit(cache=True)
def _encode_slice(src_f, src_u, dst, p, sub_scale, rne):
    s, half_m1, rebias = p[F.E_SHIFT], p[F.E_HALF_M1], p[F.E_REBIAS]
    norm_min, ovf_lim, ovf_code = p[F.E_NORM_MIN], p[F.E_OVF_LIM], p[F.E_OVF_CODE]
    inf_bits, nan_base, nan_mask = p[F.E_INF_BITS], p[F.E_NAN_BASE], p[F.E_NAN_MASK]
    nan_min, abs_mask = p[F.E_NAN_MIN], p[F.E_ABS_MASK]
    sign_in, sign_out = p[F.E_SIGN_IN], p[F.E_SIGN_OUT]
    one, zero = like(s, 1), like(s, 0)
    for i in range(src_u.size):
        b = src_u[i]
        a = band(b, abs_mask)
        bias = add(half_m1, band(shr(a, s), one)) if rne else zero
        code = sub(shr(add(a, bias), s), rebias)
        code = ovf_code if code >= ovf_lim else code
        v = np.abs(src_f[i]) * sub_scale  # exact: units of the target's subnormal step
        v = np.rint(v) if rne else v
        code = like(a, np.int32(v)) if a < norm_min else code
        nan = max(bor(nan_base, band(shr(a, s), nan_mask)), nan_min)
        code = nan if a > inf_bits else code
        dst[i] = bor(code, shl(shr(b, sign_in), sign_out))


@njit(cache=True)
def _encode_stochastic_slice(src_u, dst, p, key, offset):
    s, rebias, norm_min = p[F.E_SHIFT], p[F.E_REBIAS], p[F.E_NORM_MIN]
    norm_exp, mant_bits = p[F.E_NORM_EXP], p[F.E_MANT_BITS]
    ovf_lim, ovf_code = p[F.E_OVF_LIM], p[F.E_OVF_CODE]
    inf_bits, nan_base, nan_mask = p[F.E_INF_BITS], p[F.E_NAN_BASE], p[F.E_NAN_MASK]
    nan_min, abs_mask = p[F.E_NAN_MIN], p[F.E_ABS_MASK]
    sign_in, sign_out = p[F.E_SIGN_IN], p[F.E_SIGN_OUT]
    s64, norm_exp64 = U64(s), U64(norm_exp)
    mant_mask = (U64(1) << U64(mant_bits)) - U64(1)
    for i in range(src_u.size):
        b = src_u[i]
        a = band(b, abs_mask)
        r = mix64(key, U64(offset + i))
        code = sub(shr(add(a, like(a, r >> (U64(64) - s64))), s), rebias)
        code = ovf_code if code >= ovf_lim else code
        # below the target's normals: shift the significand by a per-element amount
        a64 = U64(a)
        e = a64 >> U64(mant_bits)
        m = (a64 & mant_mask) | (U64(e != 0) << U64(mant_bits))
        sh = min(max(s64 + norm_exp64 - max(e, U64(1)), U64(1)), U64(4096))  # wraps for normals
        m = m >> min(sh - min(sh, U64(63)), U64(63))  # keep the top bits when sh > 63
        sh = min(sh, U64(63))
        code = like(a, (m + (r >> (U64(64) - sh))) >> sh) if a < norm_min else code
        nan = max(bor(nan_base, band(shr(a, s), nan_mask)), nan_min)
        code = nan if a > inf_bits else code
        dst[i] = bor(code, shl(shr(b, sign_in), sign_out))


@njit(cache=True)
def _decode_slice(src, dst, p):
    shift, rebias, sub_lim = p[F.D_SHIFT], p[F.D_REBIAS], p[F.D_SUB_LIM]
    sub_shift, sub_rebias = p[F.D_SUB_SHIFT], p[F.D_SUB_REBIAS]
    special_min, exp_all, inf_code = p[F.D_SPECIAL_MIN], p[F.D_EXP_ALL], p[F.D_INF_CODE]
    quiet, abs_mask = p[F.D_QUIET], p[F.D_ABS_MASK]
    sign_in, sign_out = p[F.D_SIGN_IN], p[F.D_SIGN_OUT]
    zero = like(shift, 0)
    for i in range(src.size):
        h = like(shift, src[i])
        a = band(h, abs_mask)
        bits = add(shl(a, shift), rebias)
        # a subnormal code is exact as a float64; move its exponent to dst's scale
        f64 = np.float64(np.int32(a)).view(np.uint64)
        sub_bits = sub(like(a, f64 >> U64(sub_shift)), sub_rebias)
        bits = sub_bits if a < sub_lim else bits
        bits = zero if a == zero else bits
        special = bor(bor(shl(a, shift), exp_all), quiet if a > inf_code else zero)
        bits = special if a >= special_min else bits
        dst[i] = bor(bits, shl(shr(h, sign_in), sign_out))


@njit(parallel=True, cache=True)
def _encode_parallel(src_f, src_u, dst, p, sub_scale, rne, nchunks):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        _encode_slice(src_f[start:stop], src_u[start:stop], dst[start:stop], p, sub_scale, rne)


@njit(parallel=True, cache=True)
def _encode_stochastic_parallel(src_u, dst, p, key, nchunks):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src_u.size, c, nchunks)
        _encode_stochastic_slice(src_u[start:stop], dst[start:stop], p, key, start)


@njit(parallel=True, cache=True)
def _decode_parallel(src, dst, p, nchunks):
    for c in prange(nchunks):
        start, stop = chunk_bounds(src.size, c, nchunks)
        _decode_slice(src[start:stop], dst[start:stop], p)


def encode(src_f, dst, params, sub_scale, rounding, key):
    """Round the 1-D contiguous float array ``src_f`` into the bits ``dst`` (1-D, same size).

    ``params`` has the dtype of ``src_f``'s bits; ``rounding``: 0 truncate,
    1 nearest-even, 2 stochastic with the 64-bit ``key``.
    """
    src_u = src_f.view(params.dtype)
    n = src_u.size
    if rounding == 2:
        if n < SERIAL_BELOW:
            _encode_stochastic_slice(src_u, dst, params, key, 0)
        else:
            with parallel_region():
                _encode_stochastic_parallel(src_u, dst, params, key, n_chunks(n))
    elif n < SERIAL_BELOW:
        _encode_slice(src_f, src_u, dst, params, sub_scale, bool(rounding))
    else:
        with parallel_region():
            _encode_parallel(src_f, src_u, dst, params, sub_scale, bool(rounding), n_chunks(n))


def decode(src, dst, params):
    """Widen the 1-D bits ``src`` exactly into the bits ``dst`` (1-D, same size)."""
    n = src.size
    if n < SERIAL_BELOW:
        _decode_slice(src, dst, params)
    else:
        with parallel_region():
            _decode_parallel(src, dst, params, n_chunks(n))
