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
from ..cast import _rounded
from ..parallel import chunk_bounds, launch
from ..word import FP_NEAREST_EVEN, as_bits, band, bor, shr, swap_fp_control


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


@njit(cache=True, nogil=True)
def _encode_slice(x, divisor, p, sub_scale, qmax, codes, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (and no flush to zero)
    s, half_m1, rebias = p[F.E_SHIFT], p[F.E_HALF_M1], p[F.E_REBIAS]
    ovf_code, norm_min, abs_mask = p[F.E_OVF_CODE], p[F.E_NORM_MIN], p[F.E_ABS_MASK]
    sign_shift, sign_bit = p[F.E_SIGN_SHIFT], p[F.E_SIGN_BIT]
    for r in range(x.shape[0]):
        d = divisor[r]
        if qmax > 0:  # integer elements
            for i in range(x.shape[1]):
                q = min(max(np.rint(x[r, i] / d), -qmax), qmax)
                codes[r, i] = np.uint8(np.int32(q) & 0xFF)
        else:
            for i in range(x.shape[1]):
                b = as_bits(x[r, i] / d)
                a = band(b, abs_mask)
                code = _rounded(a, s, half_m1, rebias, ovf_code, norm_min, sub_scale, True,
                                True)
                codes[r, i] = bor(code, band(shr(b, sign_shift), sign_bit))
    swap_fp_control(saved)


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
