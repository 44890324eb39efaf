"""Per-element rounding rules of the float casts (CPU): the code of a finite magnitude,
the codes of infs and NaNs in both directions, and the counter-based random words of
stochastic rounding.  Inlined into the block loops of ``floatbits`` (behind
``fastq.kernels.cpu.cast``), ``minifloat`` and ``blocks/microscale``.

Rounding a magnitude ``a`` (the source bits without the sign) to a target with ``s``
fewer mantissa bits:

* normal targets: ``q = (a + bias) >> s`` then rebias the exponent; ``bias`` is
  ``2**(s-1) - 1 + lsb`` (round half to even), 0 (truncate), or the top ``s`` bits of a
  64-bit random number (stochastic).  A carry into the exponent is the correct rounding.
* subnormal targets: ``|x| * 2**(M - emin)`` is exact; ``rint`` (half-even) or
  truncation gives the code.  Stochastic rounding shifts the integer significand instead
  (``floatbits.stochastic``).

Stochastic rounding adds the top ``s`` bits of a W-bit random word ``r`` (W = 32 for
float32 sources, 64 for float64) before truncating, so P(round up) is the discarded
fraction, resolved to 2**-W.  ``r`` for element ``i`` (C order) is a pure function of
(seed, i): ``lowbias32(lo32(i) ^ k1)``, and for W = 64 that word shifted up 32 ORed with
``lowbias32(lo32(i) ^ k2)``, where ``k1, k2 = stream_keys(key, hi32(i))``.  Thread count,
chunking and backend therefore never change the result.
"""
import numpy as np
from numba import njit

from ....core import formats as F
from ..word import add, as_float, band, bit_width, bor, bxor, like, mul, shl, shr, sub

U64 = np.uint64


@njit(cache=True, nogil=True)
def lowbias32(x):
    """Chris Wellons' lowbias32 integer hash of a uint32 (a bijection, bias ~0.17)."""
    x = bxor(x, shr(x, np.uint32(16)))
    x = mul(x, np.uint32(0x7FEB352D))
    x = bxor(x, shr(x, np.uint32(15)))
    x = mul(x, np.uint32(0x846CA68B))
    return bxor(x, shr(x, np.uint32(16)))


@njit(cache=True, nogil=True)
def stream_keys(key, hi):
    """The two 32-bit keys of the random stream for indices whose top 32 bits are ``hi``."""
    k1 = lowbias32(bxor(np.uint32(key & U64(0xFFFFFFFF)),
                        lowbias32(bxor(np.uint32(hi), np.uint32(key >> U64(32))))))
    return k1, lowbias32(add(k1, np.uint32(0x9E3779B9)))


@njit(cache=True, nogil=True, inline="always")
def rounded(a, s, half_m1, rebias, ovf_code, norm_min, sub_scale, rne, with_sub):
    """The code of the finite magnitude bits ``a`` (sign not included)."""
    bias = add(half_m1, band(shr(a, s), like(s, 1))) if rne else like(s, 0)
    code = min(sub(shr(add(a, bias), s), rebias), ovf_code)
    if with_sub:  # |x| in units of the target's subnormal step: exact
        v = as_float(a) * sub_scale
        v = np.rint(v) if rne else v
        code = like(a, np.int32(v)) if a < norm_min else code
    return code


@njit(cache=True, nogil=True, inline="always")
def encode_specials(src_b, dst_b, p):
    """Rewrite the codes of the infs and NaNs of a block."""
    inf_bits, nan_base, nan_mask = p[F.E_INF_BITS], p[F.E_NAN_BASE], p[F.E_NAN_MASK]
    nan_min, abs_mask, s = p[F.E_NAN_MIN], p[F.E_ABS_MASK], p[F.E_SHIFT]
    sign_shift, sign_bit, inf_out = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT], p[F.E_INF_OUT]
    for i in range(src_b.size):
        b = src_b[i]
        a = band(b, abs_mask)
        nan = max(bor(nan_base, band(shr(a, s), nan_mask)), nan_min)
        # (XOR: float4_e2m1fn's "NaN" is the zero of the opposite sign, as ml_dtypes)
        code = bxor(nan if a > inf_bits else inf_out, band(shr(b, sign_shift), sign_bit))
        dst_b[i] = code if a >= inf_bits else dst_b[i]


@njit(cache=True, nogil=True, inline="always")
def random_word(a, counter, k1, k2):
    """The W-bit random word (W: ``a``'s width) of the element with this counter."""
    r = like(a, lowbias32(bxor(counter, k1)))
    if bit_width(a) == 64:
        r = bor(shl(r, like(a, 32)), like(a, lowbias32(bxor(counter, k2))))
    return r


@njit(cache=True, nogil=True, inline="always")
def decode_specials(src_b, dst_b, p):
    """Rewrite the infs and NaNs of a block as NumPy widens them: the payload shifted up,
    a signaling NaN kept signaling (the instruction would quiet it)."""
    shift, special_min, exp_all = p[F.D_SHIFT], p[F.D_SPECIAL_MIN], p[F.D_EXP_ALL]
    abs_mask, sign_mask, sign_shift = p[F.D_ABS_MASK], p[F.D_SIGN_MASK], p[F.D_SIGN_SHIFT]
    for i in range(src_b.size):
        h = like(shift, src_b[i])
        a = band(h, abs_mask)
        special = bor(bor(shl(a, shift), exp_all), shl(band(h, sign_mask), sign_shift))
        dst_b[i] = special if a >= special_min else dst_b[i]
