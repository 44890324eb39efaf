"""NF4 kernels (CUDA twin of ``fastq.kernels.cpu.blocks.nf4``): per-block absmax and
table indices over a flat device float32 array in blocks of ``block`` elements (the
last one partial), and, for the GPU only, the table decode of ``dequantize`` (the CPU
decodes with NumPy: ``TABLE[code] * absmax``).

``absmax`` runs one thread per block and takes the integer maximum of the magnitude
bits, which is the float maximum of finite values (and exceeds ``0x7f800000`` where the
block holds a NaN or inf, which the caller checks on the host).  ``encode`` runs one
thread per element: ``v = x / absmax`` (the IEEE float32 division; an all-zero block
divides by 1) and the index is the number of the 15 float32 midpoints ``mid`` strictly
below ``v``, as on the CPU.
"""
import numpy as np
from numba import cuda

from .. import launch, run_over
from .ggml import as_bits, as_float


@cuda.jit(cache=True)
def _absmax_kernel(x, block, out):
    for b in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        top = np.int64(0)
        for i in range(b * block, min((b + 1) * block, x.size)):
            top = max(top, np.int64(as_bits(x[i])) & 0x7FFFFFFF)
        out[b] = as_float(np.uint32(top))


def absmax(x, block, out):
    """``out[b] = max |x[b*block:(b+1)*block]|`` (device arrays; a NaN or inf in a block
    leaves a NaN or inf there)."""
    run_over(_absmax_kernel, out.size, x, block, out)


@cuda.jit(cache=True)
def _encode_kernel(x, block, amax, mid, codes):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        a = amax[i // block]
        a = a if a > 0 else np.float32(1)
        v = x[i] / a
        k = 0
        for m in range(15):
            if v > mid[m]:
                k += 1
        codes[i] = k


def encode(x, block, amax, mid, codes):
    """uint8 ``codes`` of the flat device float32 ``x`` with the per-block ``amax``
    (``mid``: the float32 midpoints, host or device)."""
    if x.size:
        blocks, threads = launch(x.size)
        _encode_kernel[blocks, threads](x, block, amax, cuda.to_device(mid), codes)


@cuda.jit(cache=True)
def _decode_kernel(codes, block, absmax, table, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = table[codes[i]] * absmax[i // block]


def decode(codes, block, absmax, table, out):
    """``out[i] = table[codes[i]] * absmax[i // block]`` in float32 (GPU only)."""
    if out.size:
        blocks, threads = launch(out.size)
        _decode_kernel[blocks, threads](codes, block, absmax, cuda.to_device(table), out)
