"""Scaled float8 / float4 quantization: "float8_e4m3fn", "float8_e5m2" (and
"float4_e2m1fn"), at any granularity.

ONNX QuantizeLinear / DequantizeLinear with a float output type::

    codes = cast(x / scale, saturate=True)     # x / scale: a true float32 division
    x_hat = float32(codes) * scale             # float32 product

Dynamic scale (``scale=None``): ``scale = amax / fmax`` per block of the granularity
(``fmax`` = 448, 57344, 6), in float32, from the range pass of linear quantization
(the same kernels and blocked view; NaN and inf handled as there, ``nan_policy``); an
all-zero block gets scale 1 and a scale is floored at the smallest normal float32, as
the linear scales are.  No zero point (``None``): a given one must be zero, as ONNX
requires for float8 (ONNX's reference adds that zero to a float4 quotient, so -0.0
gives +0 there, and here).  ``qt.codes()`` is the ml_dtypes array; float4 codes are stored
packed two per byte, the first element in the low nibble (ONNX's packing).
"""
import math

import numpy as np

from ...backend import CPU, select
from ...core import checks
from ...core.granularity import as_granularity
from ...runtime import device
from ..casting import cast
from ..linear import check_static_params, packed_codes, to_float32, unpacked_codes
from ..qtensor import QTensor

FMAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0, "float4_e2m1fn": 6.0}
TINY = np.finfo(np.float32).tiny


def quantize(x, dtype, scheme="symmetric", granularity="tensor", scale=None,
             zero_point=None, narrow_range=False, nan_policy="raise", backend="auto",
             **options):
    """``QTensor`` of ``cast(x / scale, saturate=True)`` (see the module docstring).

    ``scheme`` is not used (float codes are symmetric); ``narrow_range`` must be False.
    Runs on the CPU (a device ``x`` is brought to the host).
    """
    if options:
        raise TypeError(f"quantize() got an unexpected keyword argument "
                        f"{next(iter(options))!r} for dtype {dtype!r}")
    if checks.check_bool(narrow_range, "narrow_range"):
        raise ValueError(f"narrow_range does not apply to {dtype}")
    select(backend, x)  # (validates backend)
    x = checks.as_float_array(device.to_host(x))
    granularity = as_granularity(granularity)
    if scale is None:
        if zero_point is not None:
            raise ValueError("zero_point is only used with a given scale")
        scale = amax_scale(x, granularity, FMAX[dtype], nan_policy)
    else:
        scale, _ = check_static_params(scale, None, "int8", x.shape, granularity, -128, 127)
        if zero_point is not None and np.any(np.asarray(zero_point, np.float64) != 0):
            raise ValueError(f"zero_point must be 0 for {dtype} (ONNX float8), got "
                             f"{zero_point!r}")
    x32 = x if x.dtype == np.float32 else to_float32(x)
    with np.errstate(all="ignore"):  # (inf / NaN inputs: saturated / kept, as ONNX)
        ratio = np.divide(x32, expand(scale, x.shape, granularity.blocks(x.shape)),
                          dtype=np.float32)
        if dtype == "float4_e2m1fn":  # ONNX adds the (zero) zero point here: -0 -> +0
            ratio += np.float32(0)
    codes = cast(ratio, dtype, saturate=True, backend="cpu")
    data = packed_codes(codes.view(np.uint8), 4) if dtype == "float4_e2m1fn" else codes
    return QTensor(data, dtype, scale, None, x.shape, granularity)


def amax_scale(x, granularity, fmax, nan_policy="raise"):
    """float32 ``amax / fmax`` per block of ``granularity`` (range kernels of linear
    quantization), 1 for an all-zero block, floored at the smallest normal float32."""
    from ..quantization import QuantizeCall
    job = QuantizeCall(x, "int8", "symmetric", granularity, False, nan_policy, "cpu")
    rmin, rmax = job.value_range()
    amax = np.maximum(-rmin, rmax).astype(np.float32)
    scale = np.divide(amax, np.float32(fmax), dtype=np.float32)
    scale = np.where(amax == 0, np.float32(1), np.maximum(scale, np.float32(TINY)))
    return scale.astype(np.float32).reshape(granularity.param_shape(x.shape))


def expand(scale, shape, blocks):
    """The per-block ``scale`` broadcast to ``shape``: each parameter repeated over its
    block (partial last blocks cut), a dimension of one block left to broadcasting."""
    grid = tuple(-(-n // max(b, 1)) for n, b in zip(shape, blocks))
    s = np.asarray(scale, np.float32).reshape(grid if math.prod(shape) else -1)
    for axis, (n, b) in enumerate(zip(shape, blocks)):
        if grid[axis] > 1 and b > 1:
            s = np.repeat(s, b, axis=axis)[(slice(None),) * axis + (slice(0, n),)]
    return s


def float4_codes(data, shape):
    """The ``ml_dtypes.float4_e2m1fn`` array of ``shape`` whose codes ``data`` holds two
    per byte, the first element in the low nibble (ONNX's and NVFP4's packing)."""
    import ml_dtypes
    nibbles = unpacked_codes(data, 4, False, math.prod(shape), np.uint8)
    return nibbles.view(ml_dtypes.float4_e2m1fn).reshape(shape)


def codes(qt):
    """The element codes: an ml_dtypes array of ``qt.shape``."""
    data = device.to_host(qt.data)
    return float4_codes(data, qt.shape) if qt.dtype == "float4_e2m1fn" else data


def dequantize(qt, backend="auto"):
    """``float32(codes) * scale`` (ONNX DequantizeLinear), float32 of ``qt.shape``."""
    select(backend, qt.data)
    values = cast(codes(qt), "float32", backend="cpu")
    scale = device.to_host(qt.scale)
    blocks = as_granularity(qt.granularity).blocks(qt.shape)
    out = CPU.empty(qt.shape, np.float32)
    np.multiply(values, expand(scale, qt.shape, blocks), out=out, dtype=np.float32)
    return out
