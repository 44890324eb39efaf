"""Kernels of the microscaling formats (OCP MX, NVFP4): per-block absolute maxima and
block-scaled element codes, over a float32 array viewed as rows of one block (CPU).

``block_amax_bits`` gives each row's largest ``|x|`` as float32 bits (an integer max of
the magnitude bits: the float order for finite values; inf and NaN come out at or above
``0x7F800000``).  ``encode_rows`` writes ``code(x / divisor[row])``: a true float32
division (exact for the power-of-two MX scales), then the generic rounding of
``fastq.kernels.cpu.cast`` with the element format's parameters (``fastq.core.formats
.encode_params``, saturating), or for integer elements ``clip(rint(x / d), -qmax,
qmax)``.  Inputs are finite (checked by the amax pass before).
"""
import numpy as np
from numba import njit, prange

from ....core import formats as F
from ..rounding import rounded
from ..parallel import chunk_bounds, launch
from ..word import FP_NEAREST_EVEN, as_bits, as_float, band, bor, shr, swap_fp_control


@njit(cache=True, nogil=True)
def _amax_slice(x_u, out, stream):
    mask = np.uint32(0x7FFFFFFF)
    for r in range(x_u.shape[0]):
        top = np.uint32(0)
        for i in range(x_u.shape[1]):
            top = max(top, band(x_u[r, i], mask))
        out[r] = top


@njit(parallel=True, cache=True, nogil=True)
def _amax_parallel(x_u, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(x_u.shape[0], c, nchunks)
        _amax_slice(x_u[start:stop], out[start:stop], stream)


def block_amax_bits(x_u, out):
    """``out[r] = max_i (x_u[r, i] & 0x7FFFFFFF)`` for the uint32 rows ``x_u``."""
    launch(_amax_slice, _amax_parallel, x_u, out, (x_u, out))


@njit(cache=True, nogil=True, inline="always")
def _encode_row(row, d, mul, p, sub_scale, qmax, out):
    """``out[i]`` = the code of ``row[i] / d`` (``mul``: of ``row[i] * d``, where ``d`` is
    the exact reciprocal of a power of two: the same rounded quotient, without a divide):
    integer (``qmax`` > 0) or float (``p``)."""
    if qmax > 0:
        for i in range(row.size):
            v = row[i] * d if mul else row[i] / d
            q = min(max(np.rint(v), -qmax), qmax)
            out[i] = np.uint8(np.int32(q) & 0xFF)
    else:
        s, half_m1, rebias = p[F.E_SHIFT], p[F.E_HALF_M1], p[F.E_REBIAS]
        ovf_code, norm_min, abs_mask = p[F.E_OVF_CODE], p[F.E_NORM_MIN], p[F.E_ABS_MASK]
        sign_shift, sign_bit = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT]
        for i in range(row.size):
            b = as_bits(row[i] * d if mul else row[i] / d)
            a = band(b, abs_mask)
            code = rounded(a, s, half_m1, rebias, ovf_code, norm_min, sub_scale, True, True)
            out[i] = bor(code, band(shr(b, sign_shift), sign_bit))


@njit(cache=True, nogil=True)
def _encode_slice(x, divisor, p, sub_scale, qmax, codes, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (and no flush to zero)
    for r in range(x.shape[0]):
        _encode_row(x[r], divisor[r], False, p, sub_scale, qmax, codes[r])
    swap_fp_control(saved)


@njit(cache=True, nogil=True)
def _mx_slice(x, emax, shift, p, sub_scale, qmax, codes, exps, stream):
    """Each row: its shared exponent ``e = clip(floor(log2(amax)) - emax, -127, 127)``
    from the magnitude bits (exact; 0xFF marks a row holding inf or NaN), then the codes
    of ``x / 2**(e - shift)`` (exact), while the row is in cache."""
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))
    mask, one = np.uint32(0x7FFFFFFF), np.uint32(1)
    for r in range(x.shape[0]):
        top = np.uint32(0)
        for i in range(x.shape[1]):
            top = max(top, band(as_bits(x[r, i]), mask))
        if top >= np.uint32(0x7F800000):
            exps[r] = 0xFF
            continue
        if top >= np.uint32(0x00800000):
            flog = np.int32(top >> np.uint32(23)) - 127
        elif top == 0:
            flog = np.int32(-126)  # (an all-zero row: amax read as the smallest normal)
        else:  # subnormal amax m * 2**-149: floor(log2) = -150 + bit length of m
            flog, m = np.int32(-150), top
            while m:
                m >>= one
                flog += 1
        e = min(max(flog - emax, -127), 127)
        exps[r] = e + 127
        k = e - shift  # divide by 2**k: multiply by 2**-k where float32 holds it (k >= -127)
        if k >= -127:
            bits = np.uint32((127 - k) << 23 if k <= 126 else 1 << (149 - k))
            _encode_row(x[r], as_float(bits), True, p, sub_scale, qmax, codes[r])
        else:  # (k down to -133: 2**k is a float32 subnormal, its reciprocal is not)
            bits = np.uint32(1 << (k + 149))
            _encode_row(x[r], as_float(bits), False, p, sub_scale, qmax, codes[r])
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _mx_parallel(x, emax, shift, p, sub_scale, qmax, codes, exps, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(x.shape[0], c, nchunks)
        _mx_slice(x[start:stop], emax, shift, p, sub_scale, qmax, codes[start:stop],
                  exps[start:stop], stream)


def mx_rows(x, emax, shift, params, sub_scale, qmax, codes, exps):
    """OCP MX in one pass over the float32 rows ``x`` (one block each): E8M0 exponent
    codes into ``exps`` (uint8; 0xFF: inf or NaN in the row), element codes into ``codes``
    (``shift`` 6 and ``qmax`` 127 for MXINT8's 1.6 fixed point, else 0 and 0)."""
    launch(_mx_slice, _mx_parallel, x, codes,
           (x, np.int32(emax), np.int32(shift), params, np.float32(sub_scale),
            np.float32(qmax), codes, exps))


@njit(parallel=True, cache=True, nogil=True)
def _encode_parallel(x, divisor, p, sub_scale, qmax, codes, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(x.shape[0], c, nchunks)
        _encode_slice(x[start:stop], divisor[start:stop], p, sub_scale, qmax,
                      codes[start:stop], stream)


def encode_rows(x, divisor, params, sub_scale, qmax, codes):
    """``codes[r, i]`` (uint8) of ``x[r, i] / divisor[r]`` (float32 rows): the float
    element format of the uint32 ``params`` (``qmax`` 0), or int8 codes in
    ``[-qmax, qmax]`` (two's complement bytes)."""
    launch(_encode_slice, _encode_parallel, x, codes,
           (x, divisor, params, np.float32(sub_scale), np.float32(qmax), codes))


@njit(cache=True, nogil=True)
def _ggml_mxfp4_slice(codes, exps, out, stream):
    half = codes.shape[1] // 2
    for r in range(codes.shape[0]):
        out[r, 0] = exps[r]
        for j in range(half):
            out[r, 1 + j] = codes[r, j] | (codes[r, j + half] << np.uint8(4))


@njit(parallel=True, cache=True, nogil=True)
def _ggml_mxfp4_parallel(codes, exps, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(codes.shape[0], c, nchunks)
        _ggml_mxfp4_slice(codes[start:stop], exps[start:stop], out[start:stop], stream)


def ggml_mxfp4(codes, exps, out):
    """GGML ``block_mxfp4`` rows: ``out[r] = [exps[r], codes[r, j] | codes[r, j + 16] << 4
    for j < 16]`` (E2M1 codes in ``codes``, one block per row)."""
    launch(_ggml_mxfp4_slice, _ggml_mxfp4_parallel, codes, out, (codes, exps, out))
