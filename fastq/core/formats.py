"""Binary floating-point formats: bit layouts and the parameters the cast kernels take.

A format is described by its exponent and mantissa widths, its exponent bias and how it
encodes the specials.  The kernels in ``fastq.kernels.cpu.cast`` / ``fastq.kernels.cuda.cast`` are
generic over these parameters, which are passed as a small uint64 array (never frozen
as globals), so one compiled kernel serves every format of the same word sizes.
"""
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FloatFormat:
    name: str  # NumPy's or ml_dtypes' name of its dtype
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
    # The extended formats (fastq.kernels.*.minifloat): 8 bits or fewer, decoded by a
    # table of their codes.  finite_max: the largest finite code where the all-ones
    # exponent holds finite values (e4m3fn, e2m1fn); overflow_nan: a finite overflow and
    # +-inf give NaN, not +-max, without saturation (ml_dtypes' float8_e4m3fn);
    # exponent_only: E8M0 (no sign, no zero, code c is 2**(c - 127), 0xFF NaN).
    finite_max: int = 0
    overflow_nan: bool = False
    exponent_only: bool = False

    @property
    def dtype(self):
        """The NumPy dtype (ml_dtypes', imported on first use, for the formats NumPy
        lacks: ``import fastq`` does not pay for ml_dtypes until bfloat16 or float8 is
        needed)."""
        return dtype_named(self.name)

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def width(self):
        return (0 if self.exponent_only else 1) + self.exp_bits + self.mant_bits

    @property
    def emin(self):
        return 1 - self.bias

    @property
    def inf_code(self):
        return ((1 << self.exp_bits) - 1) << self.mant_bits

    @property
    def max_code(self):
        return self.finite_max or self.inf_code - 1

    @property
    def extended(self):
        """Whether this is one of the 8-bit-or-narrower formats (table-decoded)."""
        return self.width <= 8


FORMATS = {
    # NumPy's npy_floatbits_to_halfbits: NaN keeps the top payload bits, never becomes inf.
    "float16": FloatFormat("float16", 5, 10, np.dtype(np.uint16),
                           nan_base=0x7C00, nan_min=0x7C01, keep_payload=True),
    # ml_dtypes/Eigen float_to_bfloat16_rtne: every NaN becomes the quiet NaN, sign kept.
    "bfloat16": FloatFormat("bfloat16", 8, 7, np.dtype(np.uint16),
                            nan_base=0x7FC0, nan_min=0x7FC0, decode_via_float32=True),
    # float64 -> float32 as the FPU (and NumPy) does it: NaN is quieted, payload kept.
    "float32": FloatFormat("float32", 8, 23, np.dtype(np.uint32),
                           nan_base=0x7FC00000, nan_min=0x7FC00000, keep_payload=True),
    "float64": FloatFormat("float64", 11, 52, np.dtype(np.uint64),
                           nan_base=0x7FF0000000000000, nan_min=0x7FF0000000000001,
                           keep_payload=True),
    # OCP 8-bit floats and FP4 as ml_dtypes encodes them (see ``fq.cast``): a NaN is the
    # format's one quiet NaN with the sign kept; e2m1fn has none and ml_dtypes writes the
    # zero of the opposite sign (nan_base holds the sign bit: the kernels XOR the sign in).
    "float8_e4m3fn": FloatFormat("float8_e4m3fn", 4, 3,
                                 np.dtype(np.uint8), has_inf=False, nan_base=0x7F,
                                 nan_min=0x7F, finite_max=0x7E, overflow_nan=True),
    "float8_e5m2": FloatFormat("float8_e5m2", 5, 2,
                               np.dtype(np.uint8), nan_base=0x7E, nan_min=0x7E),
    "float4_e2m1fn": FloatFormat("float4_e2m1fn", 2, 1,
                                 np.dtype(np.uint8), has_inf=False, nan_base=0x8,
                                 nan_min=0x8, finite_max=0x7),
    "float8_e8m0fnu": FloatFormat("float8_e8m0fnu", 8,
                                  0, np.dtype(np.uint8), has_inf=False, nan_base=0xFF,
                                  nan_min=0xFF, finite_max=0xFE, exponent_only=True),
}

NUMPY_FLOATS = ("float16", "float32", "float64")
_DTYPES = {name: np.dtype(name) for name in NUMPY_FLOATS}  # name -> dtype, ml_dtypes' added
_BY_DTYPE = {_DTYPES[name]: FORMATS[name] for name in NUMPY_FLOATS}  # on first use


def dtype_named(name):
    """The dtype of the format ``name``: NumPy's, or ml_dtypes' (imported here)."""
    dtype = _DTYPES.get(name)
    if dtype is None:
        import ml_dtypes
        dtype = _DTYPES[name] = np.dtype(getattr(ml_dtypes, name))
    return dtype


def is_added_dtype(dtype):
    """Whether ``dtype`` is one that a library added to NumPy (ml_dtypes' formats), not
    one of NumPy's own: their kind does not say it (``"V"`` for most of ml_dtypes', but
    ``"f"`` for float8_e5m2), their type number does (``NPY_USERDEF`` = 256 on)."""
    return dtype.num >= 256


def format_of_dtype(dtype):
    """The FloatFormat of a NumPy/ml_dtypes dtype, or None."""
    dtype = np.dtype(dtype).newbyteorder("=")
    fmt = _BY_DTYPE.get(dtype)
    if fmt is None and is_added_dtype(dtype) and len(_BY_DTYPE) < len(FORMATS):
        # an ml_dtypes array: ml_dtypes is loaded already, since it exists
        _BY_DTYPE.update({f.dtype: f for f in FORMATS.values()})
        fmt = _BY_DTYPE.get(dtype)
    return fmt


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
    inf_out = (dst.max_code if saturate or not (dst.has_inf or dst.overflow_nan)
               else dst.nan_base if dst.overflow_nan else dst.inf_code)
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
        # (``fastq.kernels.cpu.floatbits.encode``)
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


def code_values(fmt):
    """The float64 value of every code 0..255 of an extended format (the byte's bits
    above the format's width ignored), computed from the layout alone."""
    codes = np.arange(256) & ((1 << fmt.width) - 1)
    if fmt.exponent_only:
        values = np.ldexp(1.0, codes - fmt.bias)
        return np.where(codes == fmt.nan_base, np.nan, values)
    sign = np.where(codes >> (fmt.width - 1) & 1, -1.0, 1.0)
    e = codes >> fmt.mant_bits & ((1 << fmt.exp_bits) - 1)
    m = codes & ((1 << fmt.mant_bits) - 1)
    mag = np.where(e == 0, np.ldexp(m.astype(np.float64), fmt.emin - fmt.mant_bits),
                   np.ldexp(1.0 + m / (1 << fmt.mant_bits), e - fmt.bias))
    mag_code = codes & ((1 << (fmt.width - 1)) - 1)
    if fmt.has_inf:
        mag = np.where(mag_code == fmt.inf_code, np.inf, mag)
        mag = np.where(mag_code > fmt.inf_code, np.nan, mag)
    elif fmt.finite_max != (1 << (fmt.width - 1)) - 1:  # a NaN code above the largest
        mag = np.where(mag_code > fmt.finite_max, np.nan, mag)
    return np.copysign(mag, sign)  # (a NaN keeps the code's sign, as in ml_dtypes)


def decode_table(src, dst):
    """The ``dst.word`` bits of every byte of the extended format ``src`` (256 entries):
    exact values, rounded to ``dst`` only where it cannot hold them (E8M0 in float16 or
    bfloat16, as NumPy/ml_dtypes round float32).  A NaN decodes to ``dst``'s quiet NaN
    with the code's sign, as ml_dtypes does."""
    with np.errstate(over="ignore", invalid="ignore"):  # (E8M0 past float16: inf)
        values = code_values(src).astype(np.float32)  # (exact: every code fits float32)
        table = values.astype(dst.dtype) if dst.width < 32 else values
    return np.ascontiguousarray(table).view(dst.word)


# Layout of the E8M0 encode parameter array (the source word type).
(X_MANT_BITS, X_REBIAS, X_HALF, X_ABS_MASK, X_INF_BITS, X_NORM_MIN, X_SUB_ONE, X_OVF_CODE,
 X_INF_OUT, X_LEN) = range(10)


def e8m0_params(src, saturate, truncate=False):
    """Parameters rounding ``src`` bits (float32 or float64) to E8M0 codes, ml_dtypes'
    rule: ``code = (|bits| + half) >> M - (B - 127)`` (ties away from zero, in the
    exponent grid), clamped below at code 0; zero, negatives and NaN give NaN (0xFF).
    A float32 subnormal reads code 1 from ``1.5 * 2**-127`` up (X_SUB_ONE), else 0.
    ``saturate``: a finite overflow gives 2**127 (0xFE), as ONNX's ``to_float8e8m0``."""
    params = np.zeros(X_LEN, src.word)
    params[X_MANT_BITS] = src.mant_bits
    params[X_REBIAS] = src.bias - 127
    params[X_HALF] = 0 if truncate else 1 << (src.mant_bits - 1)
    params[X_ABS_MASK] = (1 << (src.width - 1)) - 1
    params[X_INF_BITS] = src.inf_code
    params[X_NORM_MIN] = 1 << src.mant_bits
    params[X_SUB_ONE] = (3 << (src.mant_bits - 2) if src.bias == 127 and not truncate
                         else 1 << src.mant_bits)
    params[X_INF_OUT] = 0xFF  # (+inf is NaN even saturated, as ONNX's to_float8e8m0)
    params[X_OVF_CODE] = 0xFE if saturate or truncate else 0xFF
    return params
