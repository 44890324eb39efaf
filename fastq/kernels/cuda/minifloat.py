"""The element codec of the extended formats (CUDA twin of
``fastq.kernels.cpu.minifloat``): the table decoder and the E8M0 encoder, with the same
parameters (``fastq.core.formats.e8m0_params``) and the same random stream (that of
``fastq.kernels.cuda.cast``).  Integer arithmetic in uint64, as in ``cast``: where the
CPU kernel lets a subtraction wrap around, the value is discarded by a later select.
"""
import numpy as np
from numba import cuda

from ...core import formats as F
from . import launch
from .cast import _device_params, lowbias32, stream_keys

U64 = np.uint64


@cuda.jit(cache=True)
def _decode_kernel(src, dst, table):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = table[src[i]]


def decode(src, dst, table):
    """``dst[i] = table[src[i]]``: the 1-D device uint8 codes into the device words."""
    if src.size == 0:
        return
    blocks, threads = launch(src.size)
    _decode_kernel[blocks, threads](src, dst, table)


@cuda.jit(device=True, cache=True)
def _e8m0_code(b, up, p, sub_up):
    m_bits, rebias, abs_mask = U64(p[F.X_MANT_BITS]), U64(p[F.X_REBIAS]), U64(p[F.X_ABS_MASK])
    inf_bits, norm_min, sub_one = U64(p[F.X_INF_BITS]), U64(p[F.X_NORM_MIN]), U64(p[F.X_SUB_ONE])
    a = b & abs_mask
    t = (a + up) >> m_bits
    code = min(max(t, rebias) - rebias, U64(p[F.X_OVF_CODE]))
    if sub_one < norm_min and a < norm_min:  # float32 subnormal: code 0 or 1
        half = norm_min >> U64(1)
        code = (((max(a, half) - half) << U64(1)) + sub_up) >> m_bits
    code = U64(p[F.X_INF_OUT]) if a == inf_bits else code
    return U64(0xFF) if a == U64(0) or a > inf_bits or b != a else code


@cuda.jit(cache=True)
def _encode_e8m0_kernel(src, dst, p):
    half = U64(p[F.X_HALF])
    sub_half = (U64(p[F.X_NORM_MIN]) - U64(p[F.X_SUB_ONE])) << U64(1)
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = _e8m0_code(U64(src[i]), half, p, sub_half)


@cuda.jit(cache=True)
def _stochastic_e8m0_kernel(src, dst, p, key, width):
    drop = width - U64(p[F.X_MANT_BITS])
    hi = U64(1) << U64(63)  # no index has this high word: the keys are made on first use
    k1, k2 = U64(0), U64(0)
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        g = U64(i)
        if (g >> U64(32)) != hi:
            hi = g >> U64(32)
            k1, k2 = stream_keys(key, hi)
        counter = g & U64(0xFFFFFFFF)
        r = lowbias32(counter ^ k1)
        if width == U64(64):
            r = (r << U64(32)) | lowbias32(counter ^ k2)
        up = r >> drop
        dst[i] = _e8m0_code(U64(src[i]), up, p, up)


def encode_e8m0(src, dst, params, rounding, key):
    """Same contract as ``fastq.kernels.cpu.minifloat.encode_e8m0`` on device arrays."""
    if src.size == 0:
        return
    p = _device_params(params)
    blocks, threads = launch(src.size)
    if rounding == 2:
        width = U64(8 * params.dtype.itemsize)
        _stochastic_e8m0_kernel[blocks, threads](src, dst, p, U64(key), width)
    else:
        _encode_e8m0_kernel[blocks, threads](src, dst, p)
