"""The GPU side of the block formats: the same checks, QTensors and results as their CPU
paths in :mod:`fastq.ops.formats`, computed by the twin kernels of
``fastq.kernels.cuda.blocks``.

As for linear quantization (``fastq.ops.quantization``): device input gives device
results (a QTensor's data and scales, dequantized values); host input with
``backend="cuda"`` is copied in once and its results copied back, so it returns host
arrays exactly as the CPU does, bit for bit.  Small per-block outputs that the checks
read (NaN and overflow counts, E8M0 exponents) come back to the host.
"""
import math

import numpy as np

from ...backend import CUDA
from ...runtime import device
from ..linear import float32_input, packed_codes, unpacked_codes
from ..qtensor import QTensor


def _host_or_device(a, on_host):
    return device.to_host(a) if on_host else a


def _device_bytes(data, name="qt.data"):
    """``(1-D device view of the uint8 array data, on_host)`` (host data copied in)."""
    if device.is_device(data):
        d = device.wrap(data, name)
        if not d.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous when it lives on the GPU")
        return d.reshape(d.size), False
    return device.to_device(np.ascontiguousarray(data).reshape(-1)), True


def ggml_quantize(x, dtype, layout, nan_policy, run):
    """``fastq.ops.formats.ggml.quantize`` on the GPU (``run``): GGML block bytes."""
    a, _ = device.float_input(x)
    shape = tuple(a.shape)  # (a tuple: the simulator's shapes take no negative index)
    if not shape or shape[-1] % layout.block:
        raise ValueError(f"x's last axis must be a multiple of the block size "
                         f"{layout.block} for {dtype!r}, got shape {shape}")
    x32, on_host = float32_input(a)
    data = run.empty(shape[:-1] + (shape[-1] // layout.block * layout.block_bytes,),
                     np.uint8)
    if x32.size:
        nan, overflow = run.kernels(layout.family).quantize(x32.reshape(x32.size),
                                                            layout.kind, data.reshape(data.size))
        if nan and nan_policy == "raise":
            raise ValueError(f"x contains NaN ({nan} block(s) of {dtype!r}): use "
                             "nan_policy='ignore' to write them anyway")
        if overflow:
            raise ValueError(f"x holds {overflow} block(s) whose float16 scale would "
                             f"overflow in {dtype!r} (magnitudes too large, or inf)")
    return QTensor(_host_or_device(data, on_host), dtype, None, None, shape, None)


def ggml_dequantize(qt, layout, run):
    """``fastq.ops.formats.ggml.dequantize`` on the GPU: float32 of ``qt.shape``."""
    shape = tuple(qt.shape)
    expected = shape[:-1] + (shape[-1] // layout.block * layout.block_bytes,) if shape else None
    if qt.data.dtype != np.uint8 or tuple(qt.data.shape) != expected:
        raise ValueError(f"qt.data must be uint8 of shape {expected} for {qt.dtype!r} "
                         f"of shape {shape}, got {qt.data.dtype} {tuple(qt.data.shape)}")
    data, on_host = _device_bytes(qt.data)
    out = run.empty(shape, np.float32)
    if out.size:
        run.kernels(layout.family).dequantize(data, layout.kind, out.reshape(out.size))
    return _host_or_device(out, on_host)


def nf4_quantize(x, dtype, block_size, mid):
    """``fastq.ops.formats.nf4.quantize`` on the GPU: packed indices and absmax."""
    from ...core.granularity import PerGroup
    x32, on_host = float32_input(x)
    flat = x32.reshape(x32.size)
    n = flat.size
    absmax = CUDA.empty(-(-n // block_size), np.float32)
    codes = CUDA.empty(n, np.uint8)
    if n:
        kernels = CUDA.kernels("blocks.nf4")
        kernels.absmax(flat, block_size, absmax)
        if not np.isfinite(device.to_host(absmax)).all():  # (before the encode kernel)
            raise ValueError("x contains NaN or inf, which nf4 cannot scale")
        kernels.encode(flat, block_size, absmax, mid, codes)
    data = packed_codes(codes, 4)
    return QTensor(_host_or_device(data, on_host), dtype, _host_or_device(absmax, on_host),
                   None, tuple(x32.shape), PerGroup(block_size))


def nf4_dequantize(qt, table):
    """``fastq.ops.formats.nf4.dequantize`` on the GPU: ``table[code] * absmax``."""
    from ...core.granularity import as_granularity
    data, on_host = _device_bytes(qt.data)
    n = math.prod(qt.shape)
    out = CUDA.empty(tuple(qt.shape), np.float32)
    if n:
        c = unpacked_codes(data, 4, False, n, np.uint8)
        absmax = qt.scale
        absmax = (device.wrap(absmax, "qt.scale") if device.is_device(absmax) else
                  device.to_device(np.asarray(absmax, np.float32)))
        absmax = absmax.reshape(absmax.size)
        CUDA.kernels("blocks.nf4").decode(c, as_granularity(qt.granularity).size, absmax,
                                          table, out.reshape(n))
    return _host_or_device(out, on_host)


# --- OCP MX, GGML MXFP4 and NVFP4 ---------------------------------------------------
# (the constants of fastq.ops.formats.mx, which imports this module)
MX_BLOCK, NV_BLOCK = 32, 16
E4M3_MAX, E2M1_MAX, E4M3_TINY = np.float32(448), np.float32(6), np.float32(2.0 ** -6)

def _mx_rows(x, dtype, block, nan_policy):
    """``(device float32 rows of one block, shape, on_host)``, checked as
    ``fastq.ops.formats.mx.blocks_of`` checks them."""
    if nan_policy != "raise":
        raise ValueError(f"nan_policy must be 'raise' for {dtype}, got {nan_policy!r}")
    a, _ = device.float_input(x)
    shape = tuple(a.shape)
    if not shape or shape[-1] % block:
        raise ValueError(f"x's last dimension must be a multiple of the {dtype} block size "
                         f"{block}, got shape {shape}")
    x32, on_host = float32_input(a)
    return x32.reshape(x32.size // block, block), shape, on_host


def _e8m0(exps, shape, block, on_host):
    import ml_dtypes
    scale_shape = shape[:-1] + (shape[-1] // block,)
    exps = device.to_host(exps) if on_host else exps
    return exps.view(ml_dtypes.float8_e8m0fnu).reshape(scale_shape)


def mx_quantize(x, dtype, nan_policy, granularity, element, emax, element_params):
    """``fastq.ops.formats.mx.quantize`` (and ``mxfp4``'s, GGML bytes) on the GPU; the
    element format, its ``emax`` and codec parameters come from ``fastq.ops.formats.mx``
    (``element_params(element)``)."""
    from ...core import formats as F
    rows, shape, on_host = _mx_rows(x, dtype, MX_BLOCK, nan_policy)
    codes = CUDA.empty(rows.shape, np.uint8)
    exps = CUDA.empty(rows.shape[0], np.uint8)
    kernels = CUDA.kernels("blocks.microscale")
    if rows.size:
        kernels.mx_rows(rows, emax, 6 if element == "int8" else 0, *element_params(element),
                        codes, exps)
        if (device.to_host(exps) == 0xFF).any():
            raise ValueError(f"x contains NaN or inf, which {dtype} cannot scale")
    scales = _e8m0(exps, shape, MX_BLOCK, on_host)
    if dtype == "mxfp4":
        data = CUDA.empty((rows.shape[0], 1 + MX_BLOCK // 2), np.uint8)
        if rows.size:
            kernels.ggml_mxfp4(codes, exps, data)
        data = _host_or_device(data, on_host)
        return QTensor(data.reshape(data.size), dtype, scales, None, shape, granularity)
    code_dtype = np.int8 if element == "int8" else F.FORMATS[element].dtype
    data = _host_or_device(codes, on_host).view(code_dtype).reshape(shape)
    return QTensor(data, dtype, scales, None, shape, granularity)


def nvfp4_quantize(x, nan_policy, granularity, element_params):
    """``fastq.ops.formats.mx.quantize_nvfp4`` on the GPU: the block maxima come back to
    the host (one float a block), where the two-level scales are computed as on the CPU."""
    from ..casting import cast
    rows, shape, on_host = _mx_rows(x, "nvfp4", NV_BLOCK, nan_policy)
    kernels = CUDA.kernels("blocks.microscale")
    bits = CUDA.empty(rows.shape[0], np.uint32)
    if rows.size:
        kernels.block_amax_bits(rows.view(np.uint32), bits)
    bits = device.to_host(bits)
    if (bits >= np.uint32(0x7F800000)).any():
        raise ValueError("x contains NaN or inf, which nvfp4 cannot scale")
    block_max = bits.view(np.float32)
    amax = np.float32(np.max(block_max)) if rows.size else np.float32(0)
    tensor_scale = np.float32(amax / (E4M3_MAX * E2M1_MAX) if amax > 0 else np.float32(1))
    s = np.clip((block_max / E2M1_MAX) / tensor_scale, E4M3_TINY, E4M3_MAX).astype(np.float32)
    s8 = cast(s, "float8_e4m3fn", backend="cpu")
    total = tensor_scale * s8.astype(np.float32)
    codes = CUDA.empty(rows.shape, np.uint8)
    if rows.size:
        kernels.encode_rows(rows, total, *element_params("float4_e2m1fn"), codes)
    data = packed_codes(codes.reshape(codes.size), 4)
    s8 = s8.reshape(shape[:-1] + (shape[-1] // NV_BLOCK,))
    return QTensor(_host_or_device(data, on_host), "nvfp4",
                   s8 if on_host else device.to_device(s8), None, shape, granularity,
                   tensor_scale=np.array(tensor_scale, np.float32))


def _table(element):
    """float32 value of every code byte of the element format."""
    from ...core import formats as F
    if element == "int8":
        return np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float32) / np.float32(64)
    return F.decode_table(F.FORMATS[element], F.FORMATS["float32"]).view(np.float32)


def _exp2(e8m0_codes):
    """float32 ``2**(code - 127)`` (inf at 255, as the CPU's ``np.ldexp``)."""
    e = np.asarray(e8m0_codes).view(np.uint8).astype(np.int32) - 127
    with np.errstate(over="ignore"):
        return np.ldexp(np.float32(1), e).astype(np.float32)


def mx_dequantize(qt, element):
    """``fastq.ops.formats.mx.dequantize`` (and ``mxfp4``'s) on the GPU (``element``:
    the element format of ``qt.dtype``)."""
    n = math.prod(qt.shape)
    on_host = not device.is_device(qt.data)
    out = CUDA.empty(tuple(qt.shape), np.float32)
    if not n:
        return _host_or_device(out, on_host)
    kernels = CUDA.kernels("blocks.microscale")
    if qt.dtype == "mxfp4":
        data, _ = _device_bytes(qt.data)
        kernels.decode_ggml_mxfp4(data, _table("float4_e2m1fn"), _exp2(np.arange(256, dtype=np.uint8)),
                                  out.reshape(n))
        return _host_or_device(out, on_host)
    scale = device.to_host(qt.scale).reshape(-1)
    if qt.dtype == "nvfp4":
        packed, _ = _device_bytes(qt.data)
        codes = unpacked_codes(packed, 4, False, n, np.uint8)
        row_scale = np.float32(qt.tensor_scale) * scale.astype(np.float32)
        table, block = _table("float4_e2m1fn"), NV_BLOCK
    else:
        data = qt.data if on_host else device.wrap(qt.data, "qt.data")
        codes, _ = _device_bytes(data.view(np.uint8))
        row_scale = _exp2(scale)
        table, block = _table(element), MX_BLOCK
    kernels.decode_rows(codes, table, np.ascontiguousarray(row_scale, np.float32), block,
                        out.reshape(n))
    return _host_or_device(out, on_host)
