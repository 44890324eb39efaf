"""NormalFloat4 ("nf4", QLoRA: Dettmers et al. 2023, bitsandbytes ``quant_type="nf4"``).

The tensor is taken flat in C order, in blocks of ``block_size`` (64) elements, the last
one partial when ``block_size`` does not divide the size.  Per block, ``absmax`` (float32)
is the scale; each element ``x / absmax`` (float32 division) takes the index of the
nearest entry of the 16-value NF4 table below, a tie going to the lower index.
Dequantization: ``TABLE[code] * absmax`` in float32.  ``qt.data`` holds the 4-bit
indices packed two per byte, the first element in the low nibble (bitsandbytes puts the
first in the high nibble); ``qt.granularity`` is ``PerGroup(block_size)`` (of the
flattened tensor); ``qt.scale`` the float32 absmax, shape ``(ceil(n / 64),)``:
4.5 bits per element.  An all-zero block has absmax 0 and decodes to zeros.

bitsandbytes (0.50, whose CPU ``quantize_4bit`` is its ``default`` PyTorch kernel)
gives the same absmax; its codes are the table rule applied to ``x * (1 / absmax)``
(the float32 reciprocal) against float32-rounded midpoints, so a few elements per
million, where that product rounds across a midpoint the quotient does not, take the
neighbouring index; and it stores 1e-38 as the absmax of an all-zero partial last
block.  With an even ``block_size`` one kernel pass per block computes the absmax, the
indices and the packed bytes.
"""
import math

import numpy as np

from ...backend import CPU, select
from ...core import checks
from ...core.granularity import PerGroup, as_granularity
from ...runtime import device
from ..linear import packed_codes, to_float32, unpacked_codes
from ..qtensor import QTensor
from . import device_paths

# The NF4 code book of bitsandbytes (functional.py, ``get_4bit_type("nf4")``) as float32.
TABLE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], np.float32)
# Midpoints of neighbouring entries, exact in float64: x <= MID[i] goes to index i or
# lower (the tie to the lower index).
MID = (TABLE[:-1].astype(np.float64) + TABLE[1:].astype(np.float64)) / 2
# For a float32 v, v > MID[i] exactly when v > MID32[i], the largest float32 <= MID[i]:
# the kernel compares in float32 lanes.
MID32 = np.array([m if m <= mid else np.nextafter(m, np.float32(-1))
                  for m, mid in zip(MID.astype(np.float32), MID)], np.float32)


def quantize(x, dtype="nf4", scheme=None, granularity="tensor", scale=None,
             zero_point=None, narrow_range=False, nan_policy="raise", backend="auto",
             block_size=64, **options):
    """``QTensor`` of NF4 codes (see the module docstring)."""
    if options:
        raise TypeError(f"quantize() got an unexpected keyword argument "
                        f"{next(iter(options))!r} for dtype {dtype!r}")
    if scale is not None or zero_point is not None:
        raise ValueError("nf4 computes its own scales: scale and zero_point must be None")
    if granularity != "tensor":
        raise ValueError(f"nf4 blocks the flattened tensor (block_size=): granularity must "
                         f"be left out, got {granularity!r}")
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if nan_policy != "raise":
        raise ValueError(f"nan_policy must be 'raise' for nf4, got {nan_policy!r}")
    if select(backend, x).on_gpu:
        return device_paths.nf4_quantize(x, dtype, int(block_size), MID32)
    x = checks.as_float_array(device.to_host(x))
    # (C-contiguous: a strided float32 view reshapes to a strided 1-D view, which the
    # vector kernels do not take)
    flat = np.ascontiguousarray(x if x.dtype == np.float32 else to_float32(x)).reshape(-1)
    n = flat.size
    absmax = np.empty(-(-n // block_size), np.float32)
    kernels = CPU.kernels("blocks.nf4")
    if block_size % 2 == 0:  # one pass: absmax, indices and packing per block
        data = CPU.empty(-(-n // 2), np.uint8)
        if n:
            kernels.quantize_packed(flat, int(block_size), MID32, absmax, data)
        if not np.isfinite(absmax).all():
            raise nonfinite()
    else:  # (odd blocks: pairs of codes straddle blocks; indices, then packing)
        if not np.isfinite(flat).all():  # (before any kernel: the absmax kernel assumes it)
            raise nonfinite()
        codes = np.empty(n, np.uint8)
        if n:
            kernels.absmax(flat, int(block_size), absmax)
            kernels.encode(flat, int(block_size), absmax, MID32, codes)
        data = packed_codes(codes, 4)
    # (granularity: groups of block_size over the flattened tensor, which it records)
    return QTensor(data, dtype, absmax, None, x.shape, PerGroup(int(block_size)))


def nonfinite():
    return ValueError("x contains NaN or inf, which nf4 cannot scale")


def codes(qt):
    """The 4-bit table indices (uint8) in ``qt.shape``."""
    n = math.prod(qt.shape)
    return unpacked_codes(device.to_host(qt.data), 4, False, n, np.uint8).reshape(qt.shape)


def dequantize(qt, backend="auto"):
    """``TABLE[code] * absmax`` in float32, ``qt.shape``."""
    if select(backend, qt.data).on_gpu:
        return device_paths.nf4_dequantize(qt, TABLE)
    n = math.prod(qt.shape)
    absmax = np.ascontiguousarray(device.to_host(qt.scale), np.float32).reshape(-1)
    block = as_granularity(qt.granularity).size
    if block % 2:
        c = codes(qt).reshape(-1)
        scale = np.repeat(absmax, block)[:n]
        return (TABLE[c] * scale).astype(np.float32).reshape(qt.shape)
    out = CPU.empty(qt.shape, np.float32)
    if n:
        data = np.ascontiguousarray(device.to_host(qt.data)).reshape(-1)
        CPU.kernels("blocks.nf4").decode(data, int(block), TABLE, absmax, out.reshape(-1))
    return out
