"""GGML block formats (llama.cpp's): legacy "q8_0", "q4_0", "q4_1", "q5_0", "q5_1" and
K-quants "q2_K", "q3_K", "q4_K", "q5_K", "q6_K".

``qt.data`` is the GGML block bytes: uint8 of shape ``x.shape[:-1] + (nblocks *
block_bytes,)``, the blocks of each row along the last axis, exactly the array that
``gguf.quants.quantize(x, GGMLQuantizationType.Q4_0)`` returns (and the bytes a GGUF
file holds).  Blocks run along the last axis, which must be a multiple of the block
(32 elements; 256 for the K-quants).  The scales live inside the blocks
(``SCALES_IN_DATA``): ``qt.scale`` and ``qt.zero_point`` are None and
``qt.bits_per_element`` counts them (q8_0 8.5, q4_0 4.5, q4_1 5, q5_0 5.5, q5_1 6,
q2_K 2.625, q3_K 3.4375, q4_K 4.5, q5_K 5.5, q6_K 6.5625).

Legacy formats are byte for byte ``gguf.quants.quantize`` (the NumPy port of llama.cpp's
``quantize_row_q4_0_ref`` etc.) of the float32 input; K-quants byte for byte llama.cpp's
``quantize_row_q4_K_ref`` etc. (no importance matrix).  ``fq.dequantize`` equals
``gguf.quants.dequantize`` bit for bit.  The formulas are stated in
``fastq.kernels.cpu.blocks.ggml``, ``fastq.kernels.cpu.blocks.kquants`` and
``fastq.kernels.cpu.blocks.kquant.low`` (q2_K, q3_K).
"""
import numpy as np

from ...backend import select
from ...core import checks
from ...runtime import device, pool
from ..qtensor import QTensor
from . import device_paths

SCALES_IN_DATA = True


class Layout:
    """One GGML format: its kernel module, its number there, elements and bytes of a
    block, and the dtype of its element codes."""
    __slots__ = ("family", "kind", "block", "block_bytes", "code_dtype")

    def __init__(self, family, kind, block, block_bytes, code_dtype=np.uint8):
        self.family, self.kind, self.block = family, kind, block
        self.block_bytes, self.code_dtype = block_bytes, code_dtype


LAYOUTS = {
    "q8_0": Layout("blocks.ggml", 0, 32, 34, np.int8),
    "q4_0": Layout("blocks.ggml", 1, 32, 18),
    "q4_1": Layout("blocks.ggml", 2, 32, 20),
    "q5_0": Layout("blocks.ggml", 3, 32, 22),
    "q5_1": Layout("blocks.ggml", 4, 32, 24),
    "q4_K": Layout("blocks.kquants", 0, 256, 144),
    "q5_K": Layout("blocks.kquants", 1, 256, 176),
    "q6_K": Layout("blocks.kquants", 2, 256, 210),
    "q2_K": Layout("blocks.kquant.low", 0, 256, 84),
    "q3_K": Layout("blocks.kquant.low", 1, 256, 110),
}
NAN_POLICIES = ("raise", "ignore")
GPU_FAMILIES = ("blocks.ggml", "blocks.kquants")  # the kernel families with CUDA twins


def _on_gpu(run, dtype):
    """Whether ``run`` is the GPU, refusing the formats whose kernels are CPU-only."""
    if run.on_gpu and LAYOUTS[dtype].family not in GPU_FAMILIES:
        raise ValueError(f"{dtype!r} runs on the CPU only: pass a host array with "
                         "backend='cpu' or 'auto'")
    return run.on_gpu


def quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None,
             zero_point=None, narrow_range=False, nan_policy="raise", backend="auto",
             **options):
    """Quantize ``x`` to the GGML format ``dtype``; returns a :class:`fastq.QTensor`.

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        At least 1-D; its last axis a multiple of the block (32, K-quants 256).  It is
        converted to float32 first (the bytes are those of ``x.astype(np.float32)``).
    dtype : str
        A name of :data:`LAYOUTS`.
    nan_policy : {"raise", "ignore"}
        "raise": a NaN in ``x`` is a ValueError; "ignore": its block is written as the
        arithmetic falls (not a reference result).

    ``scheme``, ``granularity``, ``scale``, ``zero_point`` and ``narrow_range`` are fixed
    by the format: only their defaults are taken.

    Raises
    ------
    ValueError
        A last axis that the block does not divide; a block whose float16 scale (or
        q4_1/q5_1 minimum) would overflow (inf or values near 65504 * 8 and up); a NaN.
    """
    layout = LAYOUTS[dtype]
    if options:
        raise TypeError(f"quantize() got an unexpected keyword argument "
                        f"{next(iter(options))!r} for dtype {dtype!r}")
    fixed = {"scheme": (scheme, "asymmetric"), "granularity": (granularity, "tensor"),
             "scale": (scale, None), "zero_point": (zero_point, None),
             "narrow_range": (narrow_range, False)}
    for name, (value, default) in fixed.items():
        if not (value is default or (isinstance(value, str) and value == default)):
            raise ValueError(f"{name} is fixed by the GGML format {dtype!r}: leave it at "
                             f"{default!r}, got {value!r}")
    nan_policy = checks.check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    run = select(backend, x)
    if _on_gpu(run, dtype):
        return device_paths.ggml_quantize(x, dtype, layout, nan_policy, run)
    x = checks.as_float_array(x)
    if x.ndim == 0 or x.shape[-1] % layout.block:
        raise ValueError(f"x's last axis must be a multiple of the block size "
                         f"{layout.block} for {dtype!r}, got shape {x.shape}")
    nblocks = x.size // layout.block
    # (large outputs from the pool: a fresh mapping's page faults cost more than the kernel)
    data = pool.host_array(x.shape[:-1] + (x.shape[-1] // layout.block * layout.block_bytes,),
                           np.uint8)
    if nblocks:
        flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        nan, overflow = run.kernels(layout.family).quantize(flat, layout.kind,
                                                            data.reshape(-1))
        checks.check_block_counts(nan, overflow, dtype, nan_policy)
    return QTensor(data, dtype, None, None, x.shape, None)


def _check(qt):
    layout = LAYOUTS[qt.dtype]
    data = np.asarray(device.to_host(qt.data))
    shape = tuple(qt.shape)
    expected = shape[:-1] + (shape[-1] // layout.block * layout.block_bytes,) if shape else None
    if data.dtype != np.uint8 or data.shape != expected:
        raise ValueError(f"qt.data must be uint8 of shape {expected} for {qt.dtype!r} "
                         f"of shape {shape}, got {data.dtype} {data.shape}")
    return layout, np.ascontiguousarray(data).reshape(-1)


def dequantize(qt, backend="auto"):
    """float32 values of ``qt``, of ``qt.shape``: ``gguf.quants.dequantize`` bit for bit
    (``d * q`` / ``d * q + m`` per block in float32; K-quants ``(d * sc) * q - dmin * m``)."""
    run = select(backend, qt.data)
    if _on_gpu(run, qt.dtype):
        return device_paths.ggml_dequantize(qt, LAYOUTS[qt.dtype], run)
    layout, data = _check(qt)
    out = pool.host_array(qt.shape, np.float32)
    if out.size:
        run.kernels(layout.family).dequantize(data, layout.kind, out.reshape(-1))
    return out


def codes(qt):
    """Each element's code as stored, in ``qt.shape``: q8_0 int8; the others uint8, the
    unsigned code (q4_0 0..15 meaning ``code - 8``, q5_0 0..31 meaning ``code - 16``,
    q4_1/q5_1 and K-quants ``code * scale + min``, q6_K 0..63 meaning ``code - 32``,
    q2_K 0..3, q3_K 0..7 meaning ``code - 4``)."""
    layout, data = _check(qt)
    out = np.empty(qt.shape, np.uint8)
    if out.size:
        select("cpu").kernels(layout.family).codes(data, layout.kind, out.reshape(-1))
    return out.view(layout.code_dtype)
