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
``value(code) * (tensor_scale * s)`` in float32.  (When ``amax / 2688`` underflows to
0, torchao's steps give NaN block scales; that case follows them in NumPy, with the
element cast of ``fq.cast(..., saturate=True)``.)

Each format runs as one kernel pass per block (``fastq.kernels.cpu.blocks.microscale``;
NVFP4 adds a read-only pass for the tensor amax it needs first).
"""
import functools

import ml_dtypes
import numpy as np

from ...backend import CPU, select
from ...core import checks
from ...core import formats as F
from ...runtime import device
from ..casting import cast
from ..linear import packed_codes, to_float32
from ..qtensor import QTensor
from . import device_paths
from .minifloat import float4_codes

MX_BLOCK, NV_BLOCK = 32, 16
ELEMENTS = {"mxfp8_e4m3": ("float8_e4m3fn", 8), "mxfp8_e5m2": ("float8_e5m2", 15),
            "mxfp4": ("float4_e2m1fn", 2), "mxint8": ("int8", 0)}
E4M3_MAX, E2M1_MAX, E4M3_TINY = np.float32(448), np.float32(6), np.float32(2.0 ** -6)


@functools.lru_cache(maxsize=None)  # (read-only arrays, built once per element format)
def small_float_params(element):
    """``(fp, up)`` of the kernels' small-float rounding (``_small_float`` of
    ``fastq.kernels.cpu.blocks.microscale``) for ``element``: float32 ``[smallest normal,
    2**(23 - m), largest finite]`` and uint32 ``[23 - m, sign shift, sign bit]``; zeros
    for int8 elements."""
    if element == "int8":
        fp, up = np.zeros(3, np.float32), np.zeros(3, np.uint32)
        fp.flags.writeable = up.flags.writeable = False
        return fp, up
    f = F.FORMATS[element]
    fmax = np.nanmax(np.abs(F.code_values(f)[np.isfinite(F.code_values(f))]))
    fp = np.array([2.0 ** f.emin, 2.0 ** (23 - f.mant_bits), fmax], np.float32)
    up = np.array([23 - f.mant_bits, 32 - f.width, 1 << (f.width - 1)], np.uint32)
    fp.flags.writeable = up.flags.writeable = False
    return fp, up


def element_params(element):
    """``(params, sub_scale, qmax)`` of the element codec as the GPU twins take it
    (``fastq.kernels.cuda.blocks.microscale``): a saturating float cast, or integer codes
    in [-127, 127]."""
    if element == "int8":
        return np.zeros(F.E_LEN, np.uint32), 1.0, 127
    params, sub_scale = F.encode_params(F.FORMATS["float32"], F.FORMATS[element],
                                        saturate=True)
    return params, sub_scale, 0


def blocks_of(x, dtype, block, nan_policy):
    """``x`` and its flat float32 C-order copy or view, validated (last axis a multiple
    of ``block``)."""
    if nan_policy != "raise":
        raise ValueError(f"nan_policy must be 'raise' for {dtype}, got {nan_policy!r}")
    x = checks.as_float_array(device.to_host(x))
    if x.ndim == 0 or x.shape[-1] % block:
        raise ValueError(f"x's last dimension must be a multiple of the {dtype} block size "
                         f"{block}, got shape {x.shape}")
    x32 = x if x.dtype == np.float32 and x.flags.c_contiguous else to_float32(x)
    return x, x32.reshape(-1)


def nonfinite(dtype):
    return ValueError(f"x contains NaN or inf, which {dtype} cannot scale")


def code_view(codes, element):
    return codes.view(np.int8 if element == "int8" else F.FORMATS[element].dtype)


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


def mx_elements(flat, dtype):
    """``(codes, e8m0 scale codes)`` of the MX format ``dtype`` (not mxfp4) for the flat
    float32 ``flat``."""
    element, emax = ELEMENTS[dtype]
    codes = CPU.empty(flat.size, np.uint8)
    exps = np.empty(flat.size // MX_BLOCK, np.uint8)
    if flat.size:
        CPU.kernels("blocks.microscale").mx_rows(
            flat, emax, 6 if element == "int8" else 0, *small_float_params(element), codes,
            exps)
    if exps.size and exps.max() == 0xFF:  # (a max: SIMD in NumPy, unlike == then any)
        raise nonfinite(dtype)
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
    x, flat = blocks_of(x, dtype, MX_BLOCK, nan_policy)
    codes, e = mx_elements(flat, dtype)
    scale_shape = x.shape[:-1] + (x.shape[-1] // MX_BLOCK,)
    scales = e.view(ml_dtypes.float8_e8m0fnu).reshape(scale_shape)
    return QTensor(codes.reshape(x.shape), dtype, scales, None, x.shape, g)


def quantize_nvfp4(x, nan_policy, granularity):
    from ...core.layout import MAX_CHUNKS
    x, flat = blocks_of(x, "nvfp4", NV_BLOCK, nan_policy)
    kernels = CPU.kernels("blocks.microscale")
    top = np.zeros(MAX_CHUNKS, np.uint32)
    if flat.size:
        kernels.abs_max_bits(flat, top)
    if top.max() >= np.uint32(0x7F800000):
        raise nonfinite("nvfp4")
    amax = top.max().view(np.float32)
    tensor_scale = np.float32(amax / (E4M3_MAX * E2M1_MAX) if amax > 0 else np.float32(1))
    scale_shape = x.shape[:-1] + (x.shape[-1] // NV_BLOCK,)
    if tensor_scale == 0:  # (amax below 2688 * 2**-150: torchao's steps, NaN scales)
        return nvfp4_underflow(x, flat, tensor_scale, scale_shape, granularity)
    s8 = np.empty(flat.size // NV_BLOCK, np.uint8)
    data = CPU.empty(flat.size // 2, np.uint8)
    if flat.size:
        params8, _ = F.encode_params(F.FORMATS["float32"], F.FORMATS["float8_e4m3fn"],
                                     saturate=True)
        kernels.nvfp4(flat, tensor_scale, params8, e4m3_table(),
                      *small_float_params("float4_e2m1fn"), s8, data)
    return QTensor(data, "nvfp4", s8.view(ml_dtypes.float8_e4m3fn).reshape(scale_shape), None,
                   x.shape, granularity, tensor_scale=np.array(tensor_scale, np.float32))


def nvfp4_underflow(x, flat, tensor_scale, scale_shape, granularity):
    """NVFP4 when the tensor scale underflows to 0, as torchao's steps give it (NumPy)."""
    rows = flat.reshape(-1, NV_BLOCK)
    block_max = np.abs(rows).max(axis=1)
    with np.errstate(all="ignore"):
        s = np.clip((block_max / E2M1_MAX) / tensor_scale, E4M3_TINY, E4M3_MAX)
        s8 = cast(s.astype(np.float32), "float8_e4m3fn", backend="cpu")
        total = tensor_scale * s8.astype(np.float32)
        ratio = (rows / total[:, None]).astype(np.float32)
    codes = cast(ratio, "float4_e2m1fn", saturate=True, backend="cpu")
    return QTensor(packed_codes(codes.view(np.uint8), 4), "nvfp4", s8.reshape(scale_shape),
                   None, x.shape, granularity, tensor_scale=np.array(tensor_scale, np.float32))


@functools.lru_cache(maxsize=None)
def decoded(element):
    """float32 value of each code of the float format ``element`` (read-only)."""
    table = F.decode_table(F.FORMATS[element], F.FORMATS["float32"]).view(np.float32)
    table.flags.writeable = False
    return table


def e4m3_table():
    return decoded("float8_e4m3fn")


def codes(qt):
    """Element codes of ``qt.shape``: ml_dtypes float8 / float4 arrays, int8 for mxint8."""
    data = device.to_host(qt.data)
    if qt.dtype == "nvfp4":
        return float4_codes(data, qt.shape)
    return data


def dequantize(qt, backend="auto"):
    """float32 of ``qt.shape``: ``value * 2**e`` (MX; exact, or correctly rounded below
    float32's normals) or ``value * (tensor_scale * s)`` (NVFP4), in one kernel pass."""
    if select(backend, qt.data).on_gpu:
        return device_paths.mx_dequantize(qt, ELEMENTS.get(qt.dtype, ("float4_e2m1fn",))[0])
    data = np.ascontiguousarray(device.to_host(qt.data)).reshape(-1).view(np.uint8)
    scale = np.ascontiguousarray(device.to_host(qt.scale)).reshape(-1)
    out = CPU.empty(qt.shape, np.float32)
    if not out.size:
        return out
    kernels = CPU.kernels("blocks.microscale")
    if qt.dtype == "nvfp4":
        kernels.fp4_decode(data, scale.view(np.uint8), e4m3_table(), qt.tensor_scale, False,
                           out.reshape(-1))
        return out
    element, _ = ELEMENTS[qt.dtype]
    if element == "int8":
        shift, up, special, table = 0, 2.0 ** -6, 256, np.zeros(256, np.float32)
    else:
        fmt = F.FORMATS[element]
        table = decoded(element)
        special = int(np.argmax(~np.isfinite(table[:128]))) or 128  # (first inf/NaN code)
        shift, up = 23 - fmt.mant_bits, 2.0 ** (127 - fmt.bias)
    kernels.mx_decode(data, scale.view(np.uint8), shift, up, special, table, out.reshape(-1))
    return out
