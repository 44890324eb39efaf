"""Scales and zero points from ranges (CPU): the one place of their float32 formula
(``scale_zero``), used inside the kernels by dynamic quantization that computes its
parameters in the same call as its codes (``fastq.kernels.cpu.quant``), and over a
grid of ranges by ``range_params``.  The formula is stated in
``fastq.ops.linear.qparams_from_range``.
"""
import numpy as np
from numba import njit, prange

from ..word import FP_NEAREST_EVEN, swap_fp_control
from .ranges import NO_SIGNED, column_max, finite_range, max_groups, maxima_range


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def block_params(rows, scale, zero, symmetric, ignore, qmin, qmax):
    """Per column of ``rows`` (one block row): the range of its finite values and 0, its
    scale and zero point (``scale_zero``) into ``scale``, ``zero``; returns flags ``NAN``: a
    NaN met, ``INF``: an inf met.  The maxima of the bits accumulate in ``scale`` and ``zero``
    themselves (viewed as uint32 and int32), which the parameters then overwrite."""
    umax, smax = scale.view(np.uint32), zero.view(np.int32)
    umax[:] = 0
    smax[:] = NO_SIGNED
    column_max(rows.view(np.uint32), 0, rows.shape[0], umax, smax)
    return column_params(rows, umax.reshape(1, umax.size), smax.reshape(1, smax.size), scale,
                         zero, symmetric, ignore, qmin, qmax)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def column_params(rows, umax, smax, scale, zero, symmetric, ignore, qmin, qmax):
    """Per column ``j`` of ``rows``: its range from the partial maxima ``umax[:, j]``,
    ``smax[:, j]`` of its bits (``fastq.kernels.cpu.linear.ranges``), then its scale and
    zero point (``scale_zero``) into ``scale[j]``, ``zero[j]`` (which may be the maxima
    themselves: each column's are read before they are written); returns flags ``NAN``:
    a NaN met, ``INF``: an inf met."""
    flags = 0
    for j in range(scale.size):
        um, sm = umax[0, j], smax[0, j]
        for part in range(1, umax.shape[0]):
            um, sm = max(um, umax[part, j]), max(sm, smax[part, j])
        col_flags, lo, hi = maxima_range(um, sm)
        if col_flags and ignore:  # (rare: read the column again, down the rows)
            lo, hi = finite_range(rows[:, j])
        flags |= col_flags
        scale[j], zero[j] = scale_zero(lo, hi, symmetric, qmin, qmax)
    return flags


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def scale_zero(lo, hi, symmetric, qmin, qmax):
    """Scale and zero point (float32, the zero point integral) of the range
    ``[lo, hi]``: see ``fastq.ops.linear.qparams_from_range`` for the formula (its
    NumPy restatement in ``tests/reference_quant.py`` checks it)."""
    if symmetric:
        scale = max(abs(lo), abs(hi)) / np.float32((qmax - qmin) // 2)
    else:
        n = qmax - qmin
        scale = (hi - lo) / n
        if np.isinf(scale):  # a range wider than float32 holds
            scale = hi / n - lo / n
    scale = np.float32(1) if hi == lo else max(scale, np.float32(2.0 ** -126))
    if symmetric:
        return scale, np.float32(0) if qmin < 0 else np.float32((qmax + qmin + 1) // 2)
    zero = np.rint(qmin - lo / scale)
    zero = qmin if zero < qmin else zero
    return scale, qmax if zero > qmax else zero


@njit(cache=True, nogil=True, inline="always")  # (inlined: its loops run in the caller's parallel region)
def tensor_range(head, tail, nchunks, ignore):
    """``(flags, lo, hi)`` of the float32 values ``head`` (in ``nchunks`` parts, on the
    threads) and ``tail``, as ``fastq.kernels.cpu.linear.ranges.row_range`` for one row."""
    step = max(-(-head.size // nchunks), 1)
    umax, smax = np.zeros(nchunks + 1, np.uint32), np.full(nchunks + 1, NO_SIGNED, np.int32)
    for c in prange(nchunks):
        max_groups(head.view(np.uint32), step, c, c + 1, umax, smax)
    if tail.size:
        # (int64 values, not literals: literals would compile another max_groups)
        max_groups(tail.view(np.uint32), tail.size, np.int64(0), np.int64(1), umax[nchunks:],
                   smax[nchunks:])
    flags, lo, hi = maxima_range(umax.max(), smax.max())
    if flags and ignore:  # (rare: the exact range of the finite values)
        los, his = np.zeros(nchunks + 1, np.float32), np.zeros(nchunks + 1, np.float32)
        for c in prange(nchunks):
            saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (subnormals compare)
            los[c], his[c] = finite_range(head[c * step:c * step + step])
            swap_fp_control(saved)
        los[nchunks], his[nchunks] = finite_range(tail)
        lo, hi = los.min(), his.max()
    return flags, lo, hi


@njit(cache=True, nogil=True, error_model="numpy")
def range_params(rmin, rmax, symmetric, qmin, qmax, scale, zero):
    """``scale_zero`` of each range ``[rmin[i], rmax[i]]`` (flat float32 arrays) into
    ``scale[i]``, ``zero[i]``: the parameters of ranges computed in a separate pass."""
    for i in range(rmin.size):
        scale[i], zero[i] = scale_zero(rmin[i], rmax[i], symmetric, qmin, qmax)
