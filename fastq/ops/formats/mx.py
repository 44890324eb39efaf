"""Microscaling formats: OCP MX v1.0 "mxfp8_e4m3", "mxfp8_e5m2", "mxint8" (and the
shared rule of "mxfp4", whose GGML byte layout lives in ``fastq.ops.formats.mxfp4``),
and NVIDIA's "nvfp4".

OCP MX (Microscaling Formats MX v1.0, section 6.3): blocks of 32 consecutive elements
along the last axis share the scale ``2**e``, ``e = floor(log2(amax)) - emax_elem``
(``emax_elem`` = 8 for E4M3, 15 for E5M2, 2 for E2M1, 0 for INT8), clamped to E8M0's
[-127, 127]; ``floor(log2(amax))`` is read exactly from the float32 exponent bits (the
bit length of a subnormal's), never from a rounded float log2.  An all-zero block takes
``amax`` = the smallest normal float32 (as the OCP reference library, microxcaling,
does).  Elements are
``x / 2**e`` (exact) cast to the element format, round half to even, saturating
(INT8: ``clip(rint(64 * x / 2**e), -127, 127)``, the 1.6 fixed point of MXINT8).
``qt.scale`` is the ``ml_dtypes.float8_e8m0fnu`` array of shape ``x.shape[:-1] +
(n // 32,)``; ``qt.data`` the element codes (ml_dtypes float8 / int8) of ``x``'s shape.

NVFP4 follows torchao's two-level recipe (``torchao.prototype.mx_formats.nvfp4_tensor``,
``_nvfp4_quantize`` with a per-tensor scale), which is NVIDIA's: ``tensor_scale = amax(x)
/ (448 * 6)`` (float32; 1 for an all-zero tensor); per block of 16 along the last axis,
``s = float8_e4m3fn(clip(amax_block / 6 / tensor_scale, 2**-6, 448))``; elements
``e2m1(clip(x / (tensor_scale * s), -6, 6))`` rounded half to even.  ``qt.scale`` holds
the float8_e4m3fn block scales, ``qt.tensor_scale`` the float32 scalar, ``qt.data`` the
E2M1 codes packed two per byte, first element in the low nibble.  Dequantization:
``value(code) * (tensor_scale * s)`` in float32.
"""
import math

import ml_dtypes
import numpy as np

from ...backend import CPU, select
from ...core import checks
from ...core import formats as F
from ...runtime import device
from ..casting import cast
from ..linear import packed_codes, to_float32, unpacked_codes
from ..qtensor import QTensor
from . import device_paths

MX_BLOCK, NV_BLOCK = 32, 16
ELEMENTS = {"mxfp8_e4m3": ("float8_e4m3fn", 8), "mxfp8_e5m2": ("float8_e5m2", 15),
            "mxfp4": ("float4_e2m1fn", 2), "mxint8": ("int8", 0)}
E4M3_MAX, E2M1_MAX, E4M3_TINY = np.float32(448), np.float32(6), np.float32(2.0 ** -6)


def blocks_of(x, dtype, block, nan_policy):
    """``x`` as float32 rows of ``block`` elements (last axis), validated."""
    if nan_policy != "raise":
        raise ValueError(f"nan_policy must be 'raise' for {dtype}, got {nan_policy!r}")
    x = checks.as_float_array(device.to_host(x))
    if x.ndim == 0 or x.shape[-1] % block:
        raise ValueError(f"x's last dimension must be a multiple of the {dtype} block size "
                         f"{block}, got shape {x.shape}")
    x32 = x if x.dtype == np.float32 and x.flags.c_contiguous else to_float32(x)
    return x, x32.reshape(-1, block)


def block_amax(rows, dtype):
    """float32 ``max |x|`` of each row (the amax kernel); NaN or inf raises."""
    bits = np.empty(rows.shape[0], np.uint32)
    if rows.size:
        CPU.kernels("blocks.microscale").block_amax_bits(rows.view(np.uint32), bits)
    if (bits >= np.uint32(0x7F800000)).any():
        raise ValueError(f"x contains NaN or inf, which {dtype} cannot scale")
    return bits.view(np.float32)


def element_params(element):
    """``(params, sub_scale, qmax)`` of the element codec: a saturating float cast, or
    integer codes in [-127, 127]."""
    if element == "int8":
        return np.zeros(F.E_LEN, np.uint32), 1.0, 127
    params, sub_scale = F.encode_params(F.FORMATS["float32"], F.FORMATS[element],
                                        saturate=True)
    return params, sub_scale, 0


def code_view(codes, element):
    return codes.view(np.int8 if element == "int8" else F.FORMATS[element].dtype)


def encode_rows(rows, divisor, element):
    """uint8 codes of ``rows / divisor[:, None]`` in the element format (the kernel)."""
    codes = np.empty(rows.shape, np.uint8)
    if rows.size:
        CPU.kernels("blocks.microscale").encode_rows(
            rows, np.ascontiguousarray(divisor, np.float32), *element_params(element), codes)
    return code_view(codes, element)


def check_options(dtype, options, scale, zero_point, granularity, block):
    """The block formats fix their own blocks and scales: only the defaults pass."""
    from ...core.granularity import PerGroup, as_granularity
    if options:
        raise TypeError(f"quantize() got an unexpected keyword argument "
                        f"{next(iter(options))!r} for dtype {dtype!r}")
    if scale is not None or zero_point is not None:
        raise ValueError(f"{dtype} computes its own scales: scale and zero_point must be None")
    if granularity != "tensor" and as_granularity(granularity) != PerGroup(block):
        raise ValueError(f"{dtype} has blocks of {block} along the last axis: granularity "
                         f"must be left out, got {granularity!r}")
    return PerGroup(block)


def mx_elements(rows, dtype):
    """``(codes, e8m0 scale codes)`` of the MX format ``dtype`` for float32 ``rows``."""
    element, emax = ELEMENTS[dtype]
    codes = np.empty(rows.shape, np.uint8)
    exps = np.empty(rows.shape[0], np.uint8)
    if rows.size:
        CPU.kernels("blocks.microscale").mx_rows(
            rows, emax, 6 if element == "int8" else 0, *element_params(element), codes, exps)
    if (exps == 0xFF).any():
        raise ValueError(f"x contains NaN or inf, which {dtype} cannot scale")
    return code_view(codes, element), exps


def quantize(x, dtype, scheme=None, granularity="tensor", scale=None, zero_point=None,
             narrow_range=False, nan_policy="raise", backend="auto", **options):
    """``QTensor`` of an MX format (blocks of 32) or NVFP4 (blocks of 16): see the
    module docstring.  ``granularity``/``scheme`` are fixed by the format."""
    on_gpu = select(backend, x).on_gpu
    if dtype == "nvfp4":
        g = check_options(dtype, options, scale, zero_point, granularity, NV_BLOCK)
        if on_gpu:
            return device_paths.nvfp4_quantize(x, nan_policy, g, element_params)
        return quantize_nvfp4(x, nan_policy, g)
    g = check_options(dtype, options, scale, zero_point, granularity, MX_BLOCK)
    if on_gpu:
        return device_paths.mx_quantize(x, dtype, nan_policy, g, *ELEMENTS[dtype],
                                         element_params)
    x, rows = blocks_of(x, dtype, MX_BLOCK, nan_policy)
    codes, e = mx_elements(rows, dtype)
    scale_shape = x.shape[:-1] + (x.shape[-1] // MX_BLOCK,)
    scales = e.view(ml_dtypes.float8_e8m0fnu).reshape(scale_shape)
    return QTensor(codes.reshape(x.shape), dtype, scales, None, x.shape, g)


def quantize_nvfp4(x, nan_policy, granularity):
    x, rows = blocks_of(x, "nvfp4", NV_BLOCK, nan_policy)
    block_max = block_amax(rows, "nvfp4")
    amax = np.float32(np.max(block_max)) if rows.size else np.float32(0)
    tensor_scale = amax / (E4M3_MAX * E2M1_MAX) if amax > 0 else np.float32(1)
    tensor_scale = np.float32(tensor_scale)
    s = np.clip((block_max / E2M1_MAX) / tensor_scale, E4M3_TINY, E4M3_MAX).astype(np.float32)
    s8 = cast(s, "float8_e4m3fn", backend="cpu")
    total = tensor_scale * s8.astype(np.float32)
    codes = encode_rows(rows, total, "float4_e2m1fn")  # (saturating: the clip to +-6)
    data = packed_codes(codes.view(np.uint8).reshape(-1), 4)
    scale_shape = x.shape[:-1] + (x.shape[-1] // NV_BLOCK,)
    return QTensor(data, "nvfp4", s8.reshape(scale_shape), None, x.shape, granularity,
                   tensor_scale=np.array(tensor_scale, np.float32))


def codes(qt):
    """Element codes of ``qt.shape``: ml_dtypes float8 / float4 arrays, int8 for mxint8."""
    data = device.to_host(qt.data)
    if qt.dtype == "nvfp4":
        nibbles = unpacked_codes(data, 4, False, math.prod(qt.shape), np.uint8)
        return nibbles.view(ml_dtypes.float4_e2m1fn).reshape(qt.shape)
    return data


def block_values(qt):
    """float32 element values (before the block scale), rows of one block."""
    c = codes(qt)
    block = NV_BLOCK if qt.dtype == "nvfp4" else MX_BLOCK
    if qt.dtype == "mxint8":
        return (c.astype(np.float32) / np.float32(64)).reshape(-1, block)
    return cast(c, "float32", backend="cpu").reshape(-1, block)


def dequantize(qt, backend="auto"):
    """float32 of ``qt.shape``: ``value * 2**e`` (MX; exact, or correctly rounded below
    float32's normals) or ``value * (tensor_scale * s)`` (NVFP4)."""
    if select(backend, qt.data).on_gpu:
        return device_paths.mx_dequantize(qt, ELEMENTS.get(qt.dtype, ("float4_e2m1fn",))[0])
    values = block_values(qt)
    scale = device.to_host(qt.scale).reshape(-1)
    if qt.dtype == "nvfp4":
        total = np.float32(qt.tensor_scale) * scale.astype(np.float32)
        out = values * total[:, None]
    else:
        # times 2**e (a float32, subnormal at e = -127): the exact product, rounded once
        e = scale.view(np.uint8).astype(np.int32) - 127
        out = values * np.ldexp(np.float32(1), e).astype(np.float32)[:, None]
    return out.astype(np.float32, copy=False).reshape(qt.shape)
