"""The GPU side of the block formats: the same checks, QTensors and results as their CPU
paths in :mod:`fastq.ops.formats`, computed by the twin kernels of
``fastq.kernels.cuda.blocks``.

As for linear quantization (``fastq.ops.quantization``): device input gives device
results (a QTensor's data and scales, dequantized values); host input with
``backend="cuda"`` is copied in once and its results copied back, so it returns host
arrays exactly as the CPU does, bit for bit.  Small per-block outputs that the checks
read (NaN and overflow counts, E8M0 exponents) come back to the host.

The K-quants' quantizer (llama.cpp's per-block scale search) has no GPU kernel: with
``backend="cuda"`` it runs on the CPU and its bytes move to the device when ``x`` was
there; their dequantization runs on the GPU.
"""
import numpy as np

from ...backend import CPU
from ...runtime import device
from ..linear import float32_input
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
    if a.ndim == 0 or a.shape[-1] % layout.block:
        raise ValueError(f"x's last axis must be a multiple of the block size "
                         f"{layout.block} for {dtype!r}, got shape {tuple(a.shape)}")
    shape = tuple(a.shape)
    x32, on_host = float32_input(a)
    data = run.empty(shape[:-1] + (shape[-1] // layout.block * layout.block_bytes,),
                     np.uint8)
    if x32.size:
        kernels = run.kernels(layout.family)
        if hasattr(kernels, "quantize"):
            nan, overflow = kernels.quantize(x32.reshape(x32.size), layout.kind,
                                             data.reshape(data.size))
        else:  # (the K-quants' search runs on the CPU; see the module docstring)
            host = np.empty(data.shape, np.uint8)
            nan, overflow = CPU.kernels(layout.family).quantize(
                device.to_host(x32).reshape(-1), layout.kind, host.reshape(-1))
            data = host if on_host else device.to_device(host)
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
