"""Sub-byte code packing kernels (CUDA twin of ``fastq.kernels.cpu.pack``).

Same layout: codes in C order fill each byte from the low bits up, ``per = 8 // bits``
codes a byte, a partial last byte padded with zero bits; unpacking sign-extends a field
``f`` as ``(f ^ h) - h`` with ``h = 2**(bits-1)`` (0 for unsigned codes).  One thread
writes one byte (pack) or one code (unpack), in a grid-stride loop.
"""
import numpy as np
from numba import cuda

from . import launch, run_over

U64 = np.uint64


@cuda.jit(cache=True)
def _pack_kernel(codes, bits, out):
    per = 8 // bits
    mask = U64((1 << bits) - 1)
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b = U64(0)
        for k in range(per):
            i = j * per + k
            if i < codes.size:
                b |= (U64(codes[i]) & mask) << U64(k * bits)
        out[j] = b


@cuda.jit(cache=True)
def _unpack_kernel(packed, bits, half, out):
    per = 8 // bits
    mask = U64((1 << bits) - 1)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        f = (U64(packed[i // per]) >> U64((i % per) * bits)) & mask
        out[i] = ((f ^ half) + (U64(256) - half)) & U64(0xFF)


@cuda.jit(cache=True)
def _narrow_kernel(codes, qmin, qmax, out, bad):
    for i in range(cuda.grid(1), codes.size, cuda.gridsize(1)):
        c = codes[i]
        if c < qmin or c > qmax:
            bad[0] = 1
            c = 0
        out[i] = c


def narrow_codes(codes, qmin, qmax, out):
    """Copy the 1-D device integer ``codes`` into the int8/uint8 ``out``; False when a code
    lies outside ``[qmin, qmax]`` (``fq.pack``'s check; NumPy does it on the host)."""
    bad = cuda.to_device(np.zeros(1, np.int32))
    if codes.size:
        blocks, threads = launch(codes.size)
        _narrow_kernel[blocks, threads](codes, qmin, qmax, out, bad)
    return not bad.copy_to_host()[0]


def pack_into(codes, bits, out):
    """Pack the 1-D device codes (int8/uint8 viewed as uint8) into the device bytes ``out``."""
    run_over(_pack_kernel, out.size, codes.view(np.uint8), bits, out)


def unpack_into(packed, bits, signed, out):
    """Unpack ``out.size`` codes from the device bytes ``packed`` into ``out`` (uint8 view)."""
    half = U64(1 << (bits - 1)) if signed else U64(0)
    run_over(_unpack_kernel, out.size, packed, bits, half, out.view(np.uint8))
