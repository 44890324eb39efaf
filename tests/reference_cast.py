"""Independent NumPy references for fq.cast (tests only; never imported by the package).

Round to nearest even comes from the reference libraries themselves (NumPy for float16
and float32, ml_dtypes for bfloat16); what they do not provide is built here from bit
manipulation on their results:

* ``f64_to_bf16``: float64 -> bfloat16 correctly rounded once.  Round float64 to float32
  *to odd* (truncate, then set the last bit if anything was discarded), then let
  ml_dtypes round that to bfloat16 to nearest even.  With float32's 16 extra bits (>= 2),
  round-to-odd followed by round-to-nearest equals a single direct rounding (Boldo &
  Melquiond, "When double rounding is odd", 2005) -- for subnormals too, since float32's
  subnormal step is 2**16 times finer than bfloat16's.
* ``truncate``: IEEE round toward zero from any round-to-nearest reference: where the
  nearest result is larger in magnitude than ``x``, step one code toward zero (which also
  turns an overflow to inf into the largest finite value).
"""
import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
WORD = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(a):
    """The unsigned integer view of a float array."""
    a = np.asarray(a)
    return a.view(WORD[a.dtype.itemsize])


def from_bits(b, dtype):
    return np.asarray(b, WORD[np.dtype(dtype).itemsize]).view(dtype)


def nearest(x, dtype):
    """Round to nearest even: the reference libraries' own conversion."""
    x = np.asarray(x)
    if np.dtype(dtype) == BF16 and x.dtype == np.float64:
        return f64_to_bf16(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


def f64_to_f32_round_to_odd(x):
    """float64 -> float32 rounded to odd: chop toward zero, then force the last bit to 1
    when the result is inexact (NaN and inf pass through)."""
    x = np.asarray(x, np.float64)
    t = truncate(x, np.float32)
    inexact = (t.astype(np.float64) != x) & ~np.isnan(x)
    return from_bits(bits(t) | inexact.astype(np.uint32), np.float32)


def f64_to_bf16(x):
    """float64 -> bfloat16, correctly rounded once (nearest even); NaN -> quiet NaN."""
    return f64_to_f32_round_to_odd(x).astype(BF16)


def truncate(x, dtype):
    """Round toward zero (IEEE roundTowardZero; finite overflow -> largest finite)."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        r = x.astype(dtype) if not (np.dtype(dtype) == BF16 and x.dtype == np.float64) \
            else f64_to_bf16(x)
        wide = r.astype(np.float64) if r.dtype != np.float64 else r
        too_big = np.abs(wide) > np.abs(x.astype(np.float64))
    b = bits(r).copy()
    b[too_big] -= 1  # one code toward zero: magnitude bits minus one, sign untouched
    return from_bits(b, dtype)


def neighbours(x, dtype):
    """``(toward_zero, away_from_zero)`` codes of the target around each finite ``x``;
    both equal the exact result where ``x`` is representable."""
    lo = truncate(x, dtype)
    exact = lo.astype(np.float64) == np.asarray(x).astype(np.float64)
    b = bits(lo).copy()
    b[~exact] += 1
    return lo, from_bits(b, dtype)


def float32_edge_bits():
    """Dense float32 sample: per exponent, rounding boundaries of float16 (normal and
    subnormal) and bfloat16 -- exact ties with even and odd lsb, their neighbours, all-zero
    and all-one discarded bits -- both signs; plus every NaN payload's top bits."""
    out = []
    for e in range(256):
        d_f16 = 13 if e >= 113 else min(13 + 113 - e, 24)
        for d in sorted({13, 16, d_f16}):
            full = (1 << min(d, 23)) - 1
            half = 1 << (d - 1) if d <= 23 else 0
            lows = {v for v in (0, 1, full, max(half - 1, 0), half, half + 1) if v <= full}
            for hi in (0, 1, 2, 3, 0x55, (1 << 23) - 1):
                top = (hi << d) & 0x7FFFFF if d <= 23 else 0
                for low in lows:
                    out.append((e << 23) | top | low)
                    out.append((e << 23) | (((1 << 23) - 1) ^ top) & ~full | low)
    for t in range(1024):  # NaNs: every float16 payload's top bits (and bfloat16's)
        for low in (0, 1, 0x1000, 0x1FFF):
            m = (t << 13) | low
            if m:
                out.append(0x7F800000 | m)
    b = np.unique(np.array(out, np.uint32))
    return np.concatenate([b, b | np.uint32(0x80000000)])


def float32_special_values():
    """Named values around the float16 overflow threshold and the targets' min normals
    and subnormals, with their float32 neighbours."""
    centres = np.array([65504, 65519.99, 65520, 65519, 65535, 65536, 2.0 ** -14, 2.0 ** -24,
                        2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -126, 2.0 ** -133, 2.0 ** -134,
                        2.0 ** -149, 3.3895314e38, 3.4028235e38, 1.0, 0.0, np.inf],
                       np.float32)
    b = bits(centres)
    vals = np.concatenate([b - 1, b, b + 1, b + 2]).astype(np.uint32)
    vals = vals[(vals & 0x7FFFFFFF) <= 0x7F800000]
    return np.concatenate([vals, vals | np.uint32(0x80000000)])


def float64_edge_bits(lo_exp, hi_exp, discard):
    """Dense float64 sample between biased exponents ``lo_exp..hi_exp``: the same boundary
    patterns as :func:`float32_edge_bits` for each number of discarded bits in
    ``discard(e)`` (an iterable of ints per exponent), both signs."""
    out = []
    m52 = (1 << 52) - 1
    for e in range(lo_exp, hi_exp + 1):
        for d in discard(e):
            d = min(d, 53)
            full = (1 << min(d, 52)) - 1
            half = 1 << (d - 1) if d <= 52 else 0
            lows = {v for v in (0, 1, full, max(half - 1, 0), half, half + 1) if v <= full}
            for hi in (0, 1, 2, 3, 0x55, m52):
                top = (hi << d) & m52 if d <= 52 else 0
                for low in lows:
                    out.append((e << 52) | top | low)
                    out.append((e << 52) | ((m52 ^ top) & ~full) | low)
    b = np.unique(np.array(out, np.uint64))
    return np.concatenate([b, b | np.uint64(1 << 63)])


# ---------------------------------------------------------------- stochastic rounding
# The documented random stream: element i of a cast with ``seed`` draws the W-bit word
# (W: the source's width) lowbias32(lo ^ k1) [<< 32 | lowbias32(lo ^ k2)], where lo and hi
# are the low and high 32 bits of i and (k1, k2) = stream_keys(key(seed), hi).  It rounds
# up when the top d bits of that word plus the d discarded bits of |x| reach 2**d (d: the
# bits below the target's last place, at most W - 1; further bits are chopped first).

_M32 = 0xFFFFFFFF


def _lowbias32(x):
    x = np.asarray(x, np.uint64) & _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _stream_key(seed):
    z = (seed + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def random_words(n, seed, width):
    """The random word of elements 0..n-1 (uint64 arrays; ``width`` 32 or 64)."""
    key = _stream_key(seed)
    i = np.arange(n, dtype=np.uint64)
    lo, hi = i & _M32, i >> 32
    k1 = _lowbias32((key & _M32) ^ _lowbias32(hi ^ (key >> 32)))
    k2 = _lowbias32((k1 + 0x9E3779B9) & _M32)
    r = _lowbias32(lo ^ k1)
    return r if width == 32 else (r << 32) | _lowbias32(lo ^ k2)


_LAYOUT = {np.dtype(np.float32): (32, 23, 127), np.dtype(np.float64): (64, 52, 1023)}
_TARGET = {np.dtype(np.float16): (10, -14), BF16: (7, -126), np.dtype(np.float32): (23, -126)}


def stochastic(x, dtype, seed):
    """Stochastic rounding of finite ``x`` (float32/float64, 1-D) to ``dtype``."""
    x = np.asarray(x)
    width, mant_bits, bias = _LAYOUT[x.dtype]
    mant_t, emin_t = _TARGET[np.dtype(dtype)]
    u = bits(x).astype(np.uint64)
    e = ((u >> mant_bits) & ((1 << (width - mant_bits - 1)) - 1)).astype(np.int64)
    m = (u & ((1 << mant_bits) - 1)) | ((e != 0).astype(np.uint64) << mant_bits)
    e_value = np.maximum(e, 1) - bias  # |x| = m * 2**(e_value - mant_bits)
    d = np.maximum(e_value, emin_t) - mant_t - (e_value - mant_bits)  # discarded bits
    chop = np.maximum(d - (width - 1), 0).astype(np.uint64)
    d = np.clip(d, 0, width - 1).astype(np.uint64)
    f = (m >> chop) & ((np.uint64(1) << d) - np.uint64(1))
    r = random_words(x.size, seed, width)
    up = (d > 0) & ((r >> (np.uint64(width) - d)) >= (np.uint64(1) << d) - f)
    lo, hi = neighbours(x, dtype)
    return np.where(up, hi, lo)
