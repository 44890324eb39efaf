"""OCP MX "mxfp4" in GGML's MXFP4 block layout (``block_mxfp4`` of ggml-common.h):
per 32 elements, one E8M0 byte then 16 bytes whose byte ``j`` holds element ``j`` in
its low nibble and element ``j + 16`` in its high nibble (E2M1 codes, sign in bit 3).
GGML reads it as ``kvalues_mxfp4[code] * 2**(e - 128)`` with the doubled E2M1 table,
the same number as OCP's ``value * 2**(e - 127)``, so ``gguf.quants.dequantize`` of
``qt.data`` equals ``fq.dequantize``.

The shared exponent and the element rounding are OCP's (``fastq.ops.formats.mx``):
``floor(log2(amax))`` exact, elements rounded half to even.  ``gguf.quants.quantize``
(NumPy) differs in two places: it picks the first nearest entry of its table, so a tie
goes to the lower index (0.75 to 0.5 where OCP rounds to the even 1.0; a small negative
value to +0), and it does not clamp the exponent at E8M0's lower end (a block whose
amax is below ``2**-125`` gets a wrapped-around exponent byte).  fastq's bytes then
differ from gguf's; both decode as written (``gguf.quants.dequantize``).
``qt.scale`` is the E8M0 array (``ml_dtypes.float8_e8m0fnu``, ``x.shape[:-1] + (n//32,)``)
that the data also holds; ``nbytes`` counts the data alone: 4.25 bits per element.
"""
import ml_dtypes
import numpy as np

from ...backend import CPU, select
from ...runtime import device
from ..qtensor import QTensor
from . import device_paths
from .mx import (ELEMENTS, MX_BLOCK, blocks_of, check_options, element_params, nonfinite,
                 small_float_params)

SCALES_IN_DATA = True
BLOCK_BYTES = 1 + MX_BLOCK // 2


def quantize(x, dtype="mxfp4", scheme=None, granularity="tensor", scale=None,
             zero_point=None, narrow_range=False, nan_policy="raise", backend="auto",
             **options):
    """``QTensor`` whose ``data`` is the GGML MXFP4 bytes of ``x`` (uint8, 17 per block),
    written by one kernel pass (exponent, E2M1 codes and packing per block)."""
    g = check_options(dtype, options, scale, zero_point, granularity, MX_BLOCK)
    if select(backend, x).on_gpu:
        return device_paths.mx_quantize(x, dtype, nan_policy, g, *ELEMENTS[dtype],
                                         element_params)
    x, flat = blocks_of(x, dtype, MX_BLOCK, nan_policy)
    data = CPU.empty((flat.size // MX_BLOCK, BLOCK_BYTES), np.uint8)
    e = np.empty(flat.size // MX_BLOCK, np.uint8)
    if flat.size:
        CPU.kernels("blocks.microscale").ggml_mxfp4(
            flat, *small_float_params("float4_e2m1fn"), data.reshape(-1), e)
    if e.size and e.max() == 0xFF:
        raise nonfinite(dtype)
    scale_shape = x.shape[:-1] + (x.shape[-1] // MX_BLOCK,)
    scales = e.view(ml_dtypes.float8_e8m0fnu).reshape(scale_shape)
    return QTensor(data.reshape(-1), dtype, scales, None, x.shape, g)


def codes(qt):
    """The E2M1 codes (``ml_dtypes.float4_e2m1fn``) of ``qt.shape``."""
    blocks = device.to_host(qt.data).reshape(-1, BLOCK_BYTES)[:, 1:]
    nibbles = np.concatenate([blocks & np.uint8(0xF), blocks >> np.uint8(4)], axis=1)
    return nibbles.view(ml_dtypes.float4_e2m1fn).reshape(qt.shape)


def dequantize(qt, backend="auto"):
    """float32 of ``qt.shape``: ``value(code) * 2**(e - 127)``, as GGML decodes it (the
    code -0 included: GGML's table holds a plain 0 there, which decodes to +0), in one
    kernel pass over the blocks."""
    if select(backend, qt.data).on_gpu:
        return device_paths.mx_dequantize(qt, "float4_e2m1fn")
    data = np.ascontiguousarray(device.to_host(qt.data)).reshape(-1)
    out = CPU.empty(qt.shape, np.float32)
    if out.size:
        CPU.kernels("blocks.microscale").fp4_decode(
            data, np.zeros(1, np.uint8), np.zeros(1, np.float32), 1, True, out.reshape(-1))
    return out
