"""GGML K-quants (CUDA twin of ``fastq.kernels.cpu.blocks.kquants``): q4_K, q5_K, q6_K
dequantization and codes, one thread per element; ``kind`` 0 q4_K, 1 q5_K, 2 q6_K.

``dequantize(data, kind, out)`` and ``codes(data, kind, out)`` keep the CPU's names,
layouts and float32 arithmetic (``dequantize_row_q4_K`` etc. of llama.cpp's
``ggml-quants.c``, in ``gguf.quants``' order): q4_K/q5_K ``(d * sc) * q - dmin * m``,
q6_K ``(d * sc) * (q - 32)``, the products through ``mul`` (never fused into an FMA)
and the float16 super-block scales decoded by bit arithmetic
(``fastq.kernels.cuda.blocks.ggml``).  There is no ``quantize`` here: llama.cpp's
per-block search (``make_qkx2_quants`` / ``make_qx_quants``, 20 candidate scales a
sub-block, each a weighted least-squares fit) is a long serial job per super-block,
and the CPU's lane-vectorized port stays the one implementation of it.
"""
import numpy as np
from numba import cuda

from .. import launch
from .ggml import get_half, mul


@cuda.jit(device=True, cache=True)
def block_bytes(kind):
    """Bytes of a super-block: q4_K 144, q5_K 176, q6_K 210."""
    return 144 if kind == 0 else (176 if kind == 1 else 210)


@cuda.jit(device=True, cache=True)
def _scale_min(data, sb, j):
    """``get_scale_min_k4(j, scales)``: the 6-bit scale and min of sub-block ``j``."""
    if j < 4:
        return np.int64(data[sb + j]) & 63, np.int64(data[sb + j + 4]) & 63
    return ((np.int64(data[sb + j + 4]) & 0xF) | ((np.int64(data[sb + j - 4]) >> 6) << 4),
            (np.int64(data[sb + j + 4]) >> 4) | ((np.int64(data[sb + j]) >> 6) << 4))


@cuda.jit(device=True, cache=True)
def _code(data, o, kind, e):
    """The stored code of element ``e`` of the super-block at byte ``o``."""
    if kind == 2:
        half, r = e // 128, e % 128
        quarter, l = r // 32, r % 32
        low = np.int64(data[o + 64 * half + l + 32 * (quarter & 1)])
        low = (low >> 4) if quarter >= 2 else (low & 0xF)
        high = (np.int64(data[o + 128 + 32 * half + l]) >> (2 * quarter)) & 3
        return low | (high << 4)
    pair, r = e // 64, e % 64
    l = r % 32
    byte = np.int64(data[o + 16 + 32 * (1 if kind == 1 else 0) + 32 * pair + l])
    code = (byte >> 4) if r >= 32 else (byte & 0xF)
    if kind == 1:
        code |= ((np.int64(data[o + 16 + l]) >> (2 * pair + (1 if r >= 32 else 0))) & 1) << 4
    return code


@cuda.jit(cache=True)
def _dequantize_kernel(data, kind, out):
    nbytes = block_bytes(kind)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        o, e = (i // 256) * nbytes, i % 256
        q = _code(data, o, kind, e)
        if kind == 2:
            r = e % 128
            s = np.int64(data[o + 192 + 8 * (e // 128) + (r % 32) // 16 + 2 * (r // 32)])
            s = s - 256 if s >= 128 else s  # (the int8 scale)
            d = mul(get_half(data, o + 208), np.float32(s))
            out[i] = d * np.float32(q - 32)
        else:
            sc, m = _scale_min(data, o + 4, e // 32)
            d = mul(get_half(data, o), np.float32(sc))
            dm = mul(get_half(data, o + 2), np.float32(m))
            out[i] = mul(d, np.float32(q)) - dm


@cuda.jit(cache=True)
def _codes_kernel(data, kind, out):
    nbytes = block_bytes(kind)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _code(data, (i // 256) * nbytes, kind, i % 256)


def dequantize(data, kind, out):
    """See ``fastq.kernels.cpu.blocks.kquants``: super-block bytes to device float32."""
    if out.size:
        blocks, threads = launch(out.size)
        _dequantize_kernel[blocks, threads](data, kind, out)


def codes(data, kind, out):
    """Each element's stored code (q4_K 0..15, q5_K 0..31, q6_K 0..63) into ``out``."""
    if out.size:
        blocks, threads = launch(out.size)
        _codes_kernel[blocks, threads](data, kind, out)
