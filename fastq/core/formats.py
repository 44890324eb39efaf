"""Binary floating-point formats: bit layouts and the parameters the cast kernels take.

A format is described by its exponent and mantissa widths, its exponent bias and how it
encodes the specials.  The kernels in ``fastq.kernels.cpu.cast`` / ``fastq.kernels.cuda.cast`` are
generic over these parameters, which are passed as a small uint64 array (never frozen
as globals), so one compiled kernel serves every format of the same word sizes.
"""
import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class FloatFormat:
    name: str
    dtype: np.dtype
    exp_bits: int
    mant_bits: int
    word: np.dtype  # unsigned integer type holding one value's bits
    has_inf: bool = True
    # NaN produced when encoding a NaN: magnitude = max(nan_base | payload, nan_min), where
    # payload = the source mantissa's top bits if keep_payload (NumPy's float16 rule).
    nan_base: int = 0
    nan_min: int = 0
    keep_payload: bool = False
    # ml_dtypes decodes bfloat16 to float64 through float32, which quiets a NaN: fastq
    # does the same (exact decode to float32, then NumPy's widening).
    decode_via_float32: bool = False

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def width(self):
        return 1 + self.exp_bits + self.mant_bits

    @property
    def emin(self):
        return 1 - self.bias

    @property
    def inf_code(self):
        return ((1 << self.exp_bits) - 1) << self.mant_bits

    @property
    def max_code(self):
        return self.inf_code - 1


BF16 = np.dtype(ml_dtypes.bfloat16)

FORMATS = {
    # NumPy's npy_floatbits_to_halfbits: NaN keeps the top payload bits, never becomes inf.
    "float16": FloatFormat("float16", np.dtype(np.float16), 5, 10, np.dtype(np.uint16),
                           nan_base=0x7C00, nan_min=0x7C01, keep_payload=True),
    # ml_dtypes/Eigen float_to_bfloat16_rtne: every NaN becomes the quiet NaN, sign kept.
    "bfloat16": FloatFormat("bfloat16", BF16, 8, 7, np.dtype(np.uint16),
                            nan_base=0x7FC0, nan_min=0x7FC0, decode_via_float32=True),
    # float64 -> float32 as the FPU (and NumPy) does it: NaN is quieted, payload kept.
    "float32": FloatFormat("float32", np.dtype(np.float32), 8, 23, np.dtype(np.uint32),
                           nan_base=0x7FC00000, nan_min=0x7FC00000, keep_payload=True),
    "float64": FloatFormat("float64", np.dtype(np.float64), 11, 52, np.dtype(np.uint64),
                           nan_base=0x7FF0000000000000, nan_min=0x7FF0000000000001,
                           keep_payload=True),
}

_BY_DTYPE = {f.dtype: f for f in FORMATS.values()}


def format_of_dtype(dtype):
    """The FloatFormat of a NumPy/ml_dtypes dtype, or None."""
    return _BY_DTYPE.get(np.dtype(dtype).newbyteorder("="))


def format_named(to):
    """Resolve ``to`` (a name, dtype or scalar type) to a FloatFormat, or raise ValueError."""
    if isinstance(to, str):
        fmt = FORMATS.get(to)
    elif to is None:  # np.dtype(None) is float64: not a format name
        fmt = None
    else:
        try:
            fmt = format_of_dtype(to)
        except TypeError:
            fmt = None
    if fmt is None:
        raise ValueError(f"to must be one of {sorted(FORMATS)}, got {to!r}")
    return fmt


# Layout of the encode parameter array (uint64), shared by every backend.
(E_SHIFT, E_HALF_M1, E_REBIAS, E_NORM_MIN, E_NORM_EXP, E_MANT_BITS, E_OVF_CODE,
 E_INF_BITS, E_NAN_BASE, E_NAN_SHIFT, E_NAN_MASK, E_NAN_MIN, E_ABS_MASK, E_SIGN_SHIFT,
 E_SIGN_BIT, E_INF_OUT, E_LEN) = range(17)


def encode_params(src, dst, saturate, truncate=False):
    """Parameters that round ``src`` bits to ``dst`` (fewer mantissa bits, no wider range).

    The array's dtype is ``src.word``: the kernels compute in that width.  Returns ``(params, sub_scale)``; ``sub_scale = 2**(M - emin)`` of the target scales a
    value below the target's smallest normal to units of its subnormal spacing (exactly).
    """
    s = src.mant_bits - dst.mant_bits
    norm_exp = dst.emin + src.bias  # biased source exponent of the target's smallest normal
    # Where the target's subnormals are the source's own (bfloat16 from float32), the
    # integer rounding is exact for every input and the float path is never taken.
    norm_min = 0 if dst.emin <= src.emin else norm_exp << src.mant_bits
    rebias = (src.bias - dst.bias) << dst.mant_bits
    # codes past the largest finite one become ovf_code = min(code, ovf_code), unsigned;
    # rounding toward zero never overflows a finite value, but ±inf stays ±inf (inf_out)
    inf_out = dst.max_code if saturate or not dst.has_inf else dst.inf_code
    ovf_code = dst.max_code if truncate else inf_out
    params = np.zeros(E_LEN, src.word)
    params[E_SHIFT] = s
    params[E_HALF_M1] = (1 << (s - 1)) - 1
    params[E_REBIAS] = rebias
    params[E_NORM_MIN] = norm_min
    params[E_NORM_EXP] = norm_exp
    params[E_MANT_BITS] = src.mant_bits
    params[E_OVF_CODE] = ovf_code
    params[E_INF_OUT] = inf_out
    params[E_INF_BITS] = src.inf_code
    params[E_NAN_BASE] = dst.nan_base
    params[E_NAN_SHIFT] = s
    params[E_NAN_MASK] = ((1 << dst.mant_bits) - 1) if dst.keep_payload else 0
    params[E_NAN_MIN] = dst.nan_min
    params[E_ABS_MASK] = (1 << (src.width - 1)) - 1
    params[E_SIGN_SHIFT] = src.width - dst.width  # sign = (bits >> shift) & sign_bit
    params[E_SIGN_BIT] = 1 << (dst.width - 1)
    sub_scale = src.dtype.type(math.ldexp(1.0, dst.mant_bits - dst.emin) if norm_min else 1.0)
    f32 = FORMATS["float32"]
    if src.width == 64 and dst.width < 32 and dst.emin <= f32.emin and dst.bias == f32.bias:
        # bfloat16 from float64: a second block of E_LEN words holds the float32 -> dst
        # parameters, for a kernel that rounds to odd at float32 first
        # (``fastq.kernels.cpu.cast``)
        params = np.concatenate([params, encode_params(f32, dst, saturate, truncate)[0]])
    return params, sub_scale


(D_SHIFT, D_REBIAS, D_SUB_LIM, D_ONE_EXP, D_SPECIAL_MIN, D_EXP_ALL, D_ABS_MASK,
 D_SIGN_MASK, D_SIGN_SHIFT, D_LEN) = range(10)


def decode_params(src, dst):
    """Parameters that widen ``src`` bits to ``dst`` exactly (dst has more of everything).

    The array's dtype is ``dst.word``: the kernels compute in that width.  Returns
    ``(params, sub_magic)``: a source subnormal ``m * 2**(emin - M)``, shifted and rebiased
    as if it were normal, reads ``(1 + m / 2**M) * 2**emin`` once one exponent step is
    added; subtracting ``sub_magic = 2**emin`` (in dst's float type) is exact, and 0 -> 0.
    """
    params = np.zeros(D_LEN, dst.word)
    params[D_SHIFT] = dst.mant_bits - src.mant_bits
    params[D_REBIAS] = (dst.bias - src.bias) << dst.mant_bits
    # Source subnormals that are normal in dst (not bfloat16 -> float32: same exponents)
    params[D_SUB_LIM] = 0 if src.emin <= dst.emin and src.bias == dst.bias else 1 << src.mant_bits
    params[D_ONE_EXP] = 1 << dst.mant_bits
    params[D_SPECIAL_MIN] = src.inf_code  # inf and NaN keep their payload bits
    params[D_EXP_ALL] = dst.inf_code
    params[D_ABS_MASK] = (1 << (src.width - 1)) - 1
    params[D_SIGN_MASK] = 1 << (src.width - 1)
    params[D_SIGN_SHIFT] = dst.width - src.width
    return params, dst.dtype.type(math.ldexp(1.0, src.emin))  # (exact in any rounding mode)
