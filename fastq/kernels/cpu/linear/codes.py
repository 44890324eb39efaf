"""The coding loops of linear quantization (CPU): ``clip(rint(x / s) + z, qmin, qmax)`` over
a piece of a row, elementwise and vectorized, for the row and column kernels of
``fastq.kernels.cpu.quant``.  NaN detection and patching are per piece: the main loop writes
garbage for a NaN, a second loop (run only when one was met) codes it as the zero point.
Under one scale (per tensor, per row, per group along a row) the quotient comes from
the scale's reciprocal, exactly (``quotient``); a scale per column divides.
"""
import numpy as np
from numba import njit

from ..parallel import BLOCK
from ..word import fma

# Rows go in pieces of PIECE elements: the codes of a piece stay in L1 (for packing, or
# on their way out past the caches), and the loop over a piece is long enough that the
# per-piece work (slicing, the NaN flag's horizontal reduction) costs little (shorter
# pieces pay it noticeably more often).
PIECE = 4 * BLOCK
# The exponent bit of a float32 that is 1 in NaN and 0 in [2**23, 2**24) (see code_bits).
NAN_BIT = 1 << 28


# error_model="numpy": IEEE division (scales are validated > 0); Numba's default checks
# every float division for a zero divisor, which stops a per-column loop vectorizing.
@njit(cache=True, nogil=True, error_model="numpy", inline="always")  # (in big kernels LLVM may not)
def code(v, s, z, qmin, qmax):
    """``clip(rint(v / s) + z, qmin, qmax)`` as float32 (true division); NaN stays NaN."""
    q = np.rint(v / s) + z
    q = qmin if q < qmin else q  # compare-selects vectorize; float min/max do not
    return qmax if q > qmax else q


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_bits(v, s, lo, hi):
    """An int32 whose low 16 bits are ``rint(clip(v / s, lo, hi))`` (``lo``, ``hi``
    integers within 2**16 of 0): the float32 sum ``a + 1.5 * 2**23`` rounds ``a`` half to
    even at its last bit (the default rounding mode), so its bits are ``0x4B400000 +
    rint(a)``.  One add where ``rint``, ``+ z`` and a conversion took three (fewer
    instructions per element); clipping before rounding is exact, as the bounds are
    integers.  A NaN stays NaN, whose exponent bits are all ones where every other
    result's are those of 2**23: bit ``NAN_BIT`` set in an OR of results marks a NaN
    (one integer OR, cheaper than comparing each input with itself)."""
    return rounded_bits(v / s, lo, hi)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def rounded_bits(a, lo, hi):
    """``code_bits`` of the quotient ``a``."""
    a = lo if a < lo else a
    a = hi if a > hi else a
    return np.float32(a + np.float32(12582912.0)).view(np.int32)


@njit(cache=True, nogil=True, inline="always")
def by_reciprocal(s):
    """Whether ``quotient`` divides by the float32 ``s`` exactly: ``2**-64 <= s <= 2**64``."""
    return s >= np.float32(5.421010862427522e-20) and s <= np.float32(1.8446744073709552e19)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def quotient(v, ns, r):
    """``v / s``, the float32 quotient of IEEE division (rounded to nearest even), from
    ``ns = -s`` and ``r = 1 / s`` (rounded), in a multiply and four fused multiply-adds,
    which run at a higher throughput than a vector division (docs/design.md, "Quotients
    by the reciprocal", has the measurement).

    ``v * r`` is within 1.5 ulp of ``v / s``; a Newton step with the exact residual
    ``v - q * s`` (one FMA) brings it within one ulp, and the second step's result is the
    correctly rounded quotient by Markstein's theorem (``r`` within half an ulp of
    ``1 / s``, ``q`` within one ulp of ``v / s``: ``RN(q + (v - q s) r) = RN(v / s)``).
    The steps stay exact for ``by_reciprocal`` scales wherever ``|v / s| >= 2**-2``
    (below that both round to code 0).  ``v * r`` overflowing, or an inf ``v``, gives
    NaN: ``code_piece`` recomputes such pieces by division."""
    q = v * r
    q = fma(fma(ns, q, v), r, q)
    return fma(fma(ns, q, v), r, q)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def reciprocal_bits(v, ns, r, lo, hi):
    """``code_bits`` with the quotient from ``quotient``."""
    return rounded_bits(quotient(v, ns, r), lo, hi)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_piece(xs, ss, zs, s, z, per_column, qmin, qmax, fake, out, check):
    """Codes (or with ``fake`` the dequantized values) of ``xs`` into ``out``; parameters
    ``ss[j], zs[j]`` per column, else ``s, z``.  With ``check``, returns whether it met a
    NaN and codes each as the zero point (the loop writes garbage there, then a second
    loop patches it); without, the caller knows there is none (the range pass said so)."""
    nan = False
    if per_column:  # elementwise, vectorizes
        for j in range(xs.size):
            if check:
                nan |= xs[j] != xs[j]
            q = code(xs[j], ss[j], zs[j], qmin, qmax)
            if fake:
                out[j] = (q - zs[j]) * ss[j]
            else:
                out[j] = np.int32(q)  # (via int32: a direct float -> int8 store is slower)
    elif fake:
        for j in range(xs.size):
            if check:
                nan |= xs[j] != xs[j]
            out[j] = (code(xs[j], s, z, qmin, qmax) - z) * s
    else:  # the codes' low bits: the zero point added as an integer (see code_bits)
        lo, hi, zi = qmin - z, qmax - z, np.int32(z)
        seen = np.int32(0)  # (int32 | int32 would be int64 in Numba)
        if not by_reciprocal(s):  # (a scale beyond 2**+-64: by division, rare)
            return divided_codes(xs, s, lo, hi, zi, out)
        ns, r = -s, np.float32(1) / s
        for j in range(xs.size):
            bits = reciprocal_bits(xs[j], ns, r, lo, hi)
            if check:
                seen = np.int32(seen | bits)
            out[j] = bits + zi
        if seen & NAN_BIT != 0:  # (rare: a NaN or inf, or an overflowing product)
            return divided_codes(xs, s, lo, hi, zi, out)
        return False
    if nan:  # (rare)
        patch_nan(xs, ss, zs, s, z, per_column, fake, out)
    return nan


@njit(cache=True, nogil=True, error_model="numpy")
def divided_codes(xs, s, lo, hi, zi, out):
    """``code_piece``'s codes by true division (``code_bits``), each NaN as the zero
    point; returns whether it met a NaN.  For the rare pieces the reciprocal does not
    serve: a scale beyond its range, or a result that came out NaN (a NaN or inf input,
    an overflowing product).  Not inlined: one compiled copy for every call site."""
    nan = False
    for j in range(xs.size):
        if xs[j] != xs[j]:
            nan = True
            out[j] = zi
        else:
            out[j] = code_bits(xs[j], s, lo, hi) + zi
    return nan


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def patch_nan(xs, ss, zs, s, z, per_column, fake, out):
    """Code each NaN of ``xs`` as the zero point (``fake``: its value, 0)."""
    for j in range(xs.size):
        if xs[j] != xs[j]:
            zj, sj = (zs[j], ss[j]) if per_column else (z, s)
            if fake:
                out[j] = (zj - zj) * sj
            else:
                out[j] = np.int32(zj)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_rows4(xs4, ss, zs, qmin, qmax, fake, outs4, check):
    """``code_piece`` of four rows (tuples of pieces) under the same per-column
    parameters, which are loaded once for the four."""
    a, b, c, d = xs4
    oa, ob, oc, od = outs4
    nan = False
    for j in range(a.size):
        s, z = ss[j], zs[j]
        if check:
            nan |= (a[j] != a[j]) | (b[j] != b[j]) | (c[j] != c[j]) | (d[j] != d[j])
        qa, qb = code(a[j], s, z, qmin, qmax), code(b[j], s, z, qmin, qmax)
        qc, qd = code(c[j], s, z, qmin, qmax), code(d[j], s, z, qmin, qmax)
        if fake:
            oa[j], ob[j], oc[j], od[j] = (qa - z) * s, (qb - z) * s, (qc - z) * s, (qd - z) * s
        else:
            oa[j], ob[j], oc[j], od[j] = np.int32(qa), np.int32(qb), np.int32(qc), np.int32(qd)
    if nan:  # (rare)
        for xs, out in ((a, oa), (b, ob), (c, oc), (d, od)):
            patch_nan(xs, ss, zs, np.float32(0), np.float32(0), True, fake, out)
    return nan


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_scaled(xs, ss, zs, qmin, qmax, fake, out, check):
    """``code_piece`` with a scale per column and every zero point 0 (signed symmetric),
    which then need not be loaded: one row at a time runs as fast as per tensor, while
    rows four at a time (more streams through memory) and the zero point's load each
    slow it down.  (``+ 0`` stays: rint(-0.3) + 0 is +0.0.)"""
    zero = np.float32(0)
    nan = False
    for j in range(xs.size):
        if check:
            nan |= xs[j] != xs[j]
        q = code(xs[j], ss[j], zero, qmin, qmax)
        if fake:
            out[j] = (q - zero) * ss[j]
        else:
            out[j] = np.int32(q)
    if nan:  # (rare)
        patch_nan(xs, ss, zs, zero, zero, True, fake, out)
    return nan


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_rows(xs4, ss, zs, qmin, qmax, fake, outs4, check, four, zero_free):
    """Four rows (``code_rows4``) or the first one (``code_scaled`` where every zero
    point is 0, else ``code_piece``)."""
    if four:
        return code_rows4(xs4, ss, zs, qmin, qmax, fake, outs4, check)
    if zero_free:
        return code_scaled(xs4[0], ss, zs, qmin, qmax, fake, outs4[0], check)
    return code_piece(xs4[0], ss, zs, np.float32(0), np.float32(0), True, qmin, qmax, fake,
                      outs4[0], check)
