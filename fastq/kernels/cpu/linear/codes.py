"""The coding loops of linear quantization (CPU): ``clip(rint(x / s) + z, qmin, qmax)`` over
a piece of a row, elementwise and vectorized, for the row and column kernels of
``fastq.kernels.cpu.quant``.  NaN detection and patching are per piece: the main loop writes
garbage for a NaN, a second loop (run only when one was met) codes it as the zero point.
"""
import numpy as np
from numba import njit

from ..parallel import BLOCK

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
    a = v / s
    a = lo if a < lo else a
    a = hi if a > hi else a
    return np.float32(a + np.float32(12582912.0)).view(np.int32)


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
        for j in range(xs.size):
            bits = code_bits(xs[j], s, lo, hi)
            if check:
                seen = np.int32(seen | bits)
            out[j] = bits + zi
        nan = seen & NAN_BIT != 0
    if nan:  # (rare)
        patch_nan(xs, ss, zs, s, z, per_column, fake, out)
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
