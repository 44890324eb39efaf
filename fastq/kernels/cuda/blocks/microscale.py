"""Kernels of the microscaling formats (CUDA twin of ``fastq.kernels.cpu.blocks
.microscale``): OCP MX and NVFP4 over a device float32 array viewed as rows of one block.

Same functions and arithmetic as the CPU module (see its docstring): ``block_amax_bits``
(one thread per row: the integer max of the magnitude bits), ``mx_rows`` (one thread per
row: the shared exponent read exactly from the bits, then the row's codes of ``x /
2**(e - shift)``), ``encode_rows`` (one thread per element: ``x / divisor[row]``, a true
float32 division) and ``ggml_mxfp4`` (one thread per output byte).  The element
rounding is ``fastq.kernels.cpu.floatbits.rounding``'s ``rounded`` with the saturating
parameters of ``fastq.core.formats.encode_params``, in int64 (its unsigned wrap-around only ever
reaches a value that the subnormal select replaces); round half to even of a float is
the exact magic-number ``_rint``, products through ``mul`` (never fused into an FMA).

For the GPU only (the CPU dequantizes these formats with NumPy): ``decode_rows`` and
``decode_ggml_mxfp4``, ``table[code] * scale[row]`` in float32.
"""
import numpy as np
from numba import cuda

from ....core import formats as F
from .. import launch, run_over
from ..cast import _rint
from .ggml import as_bits, as_float, mul


@cuda.jit(cache=True)
def _amax_kernel(x_u, out):
    for r in range(cuda.grid(1), x_u.shape[0], cuda.gridsize(1)):
        top = np.int64(0)
        for i in range(x_u.shape[1]):
            top = max(top, np.int64(x_u[r, i]) & 0x7FFFFFFF)
        out[r] = top


def block_amax_bits(x_u, out):
    """``out[r] = max_i (x_u[r, i] & 0x7FFFFFFF)`` for the device uint32 rows ``x_u``."""
    run_over(_amax_kernel, out.size, x_u, out)


@cuda.jit(device=True, cache=True)
def _code(v, p, sub_scale, qmax):
    """The uint8 code of the float32 ``v``: int8 two's complement in ``[-qmax, qmax]``
    (``qmax`` > 0) or the saturating float element format of ``p``."""
    magic = np.float32(8388608.0)  # 2**23: _rint's float32 constant
    if qmax > 0:
        q = _rint(abs(v), magic)
        q = -q if v < 0 else q
        q = min(max(q, -qmax), qmax)
        return np.int64(np.int32(q)) & 0xFF
    b = np.int64(as_bits(v))
    a = b & np.int64(p[F.E_ABS_MASK])
    s = np.int64(p[F.E_SHIFT])
    if a < np.int64(p[F.E_NORM_MIN]):  # |v| in units of the subnormal step: exact
        code = np.int64(_rint(mul(as_float(np.uint32(a)), sub_scale), magic))
    else:
        bias = np.int64(p[F.E_HALF_M1]) + ((a >> s) & 1)
        code = min(((a + bias) >> s) - np.int64(p[F.E_REBIAS]), np.int64(p[F.E_OVF_CODE]))
    return code | ((b >> np.int64(p[F.E_SIGN_SHIFT])) & np.int64(p[F.E_SIGN_BIT]))


@cuda.jit(cache=True)
def _mx_kernel(x, emax, shift, p, sub_scale, qmax, codes, exps):
    for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        top = np.int64(0)
        for i in range(x.shape[1]):
            top = max(top, np.int64(as_bits(x[r, i])) & 0x7FFFFFFF)
        if top >= 0x7F800000:
            exps[r] = 0xFF
            continue
        if top >= 0x00800000:
            flog = (top >> 23) - 127
        elif top == 0:
            flog = np.int64(-126)  # (an all-zero row: amax read as the smallest normal)
        else:  # subnormal amax m * 2**-149: floor(log2) = -150 + bit length of m
            flog, m = np.int64(-150), top
            while m:
                m >>= 1
                flog += 1
        e = min(max(flog - emax, -127), 127)
        exps[r] = e + 127
        k = e - shift
        if k >= -127:  # times 2**-k (exact reciprocal of a power of two)
            d = as_float(np.uint32((127 - k) << 23 if k <= 126 else 1 << (149 - k)))
            for i in range(x.shape[1]):
                codes[r, i] = _code(mul(x[r, i], d), p, sub_scale, qmax)
        else:  # (2**k a float32 subnormal, its reciprocal is not: divide)
            d = as_float(np.uint32(1 << (k + 149)))
            for i in range(x.shape[1]):
                codes[r, i] = _code(x[r, i] / d, p, sub_scale, qmax)


def mx_rows(x, emax, shift, params, sub_scale, qmax, codes, exps):
    """OCP MX on the device float32 rows ``x``: E8M0 exponent codes into ``exps`` (0xFF:
    inf or NaN in the row) and element codes into ``codes`` (see the CPU twin)."""
    if x.shape[0]:
        blocks, threads = launch(x.shape[0])
        _mx_kernel[blocks, threads](x, int(emax), int(shift), cuda.to_device(params),
                                    np.float32(sub_scale), np.float32(qmax), codes, exps)


@cuda.jit(cache=True)
def _encode_kernel(x, divisor, p, sub_scale, qmax, codes):
    width = x.shape[1]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r, j = i // width, i % width
        codes[r, j] = _code(x[r, j] / divisor[r], p, sub_scale, qmax)


def encode_rows(x, divisor, params, sub_scale, qmax, codes):
    """``codes[r, i]`` (uint8) of ``x[r, i] / divisor[r]`` on the device (``divisor``
    host or device float32)."""
    if x.size:
        if not hasattr(divisor, "copy_to_host"):
            divisor = cuda.to_device(np.ascontiguousarray(divisor, np.float32))
        blocks, threads = launch(x.size)
        _encode_kernel[blocks, threads](x, divisor, cuda.to_device(params),
                                        np.float32(sub_scale), np.float32(qmax), codes)


@cuda.jit(cache=True)
def _ggml_mxfp4_kernel(codes, exps, out):
    half = codes.shape[1] // 2
    width = half + 1
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r, j = i // width, i % width
        if j == 0:
            out[r, 0] = exps[r]
        else:
            out[r, j] = np.int64(codes[r, j - 1]) | (np.int64(codes[r, j - 1 + half]) << 4)


def ggml_mxfp4(codes, exps, out):
    """GGML ``block_mxfp4`` rows: ``out[r] = [exps[r], codes[r, j] | codes[r, j + 16] << 4
    for j < 16]`` (device arrays)."""
    run_over(_ggml_mxfp4_kernel, out.size, codes, exps, out)


@cuda.jit(cache=True)
def _decode_rows_kernel(codes, table, scale, block, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = mul(table[codes[i]], scale[i // block])


def decode_rows(codes, table, scale, block, out):
    """``out[i] = table[codes[i]] * scale[i // block]`` in float32 (GPU only; ``table``
    and ``scale`` host float32, ``codes`` the flat device uint8 element codes)."""
    if out.size:  # (no table copies for an empty output)
        blocks, threads = launch(out.size)
        _decode_rows_kernel[blocks, threads](codes, cuda.to_device(table),
                                             cuda.to_device(scale), block, out)


@cuda.jit(cache=True)
def _decode_mxfp4_kernel(data, table, exp2, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        o, j = (i // 32) * 17, i % 32
        byte = np.int64(data[o + 1 + j % 16])
        code = (byte >> 4) if j >= 16 else (byte & 0xF)
        out[i] = mul(table[code], exp2[data[o]]) + np.float32(0.0)  # (-0 -> +0)


def decode_ggml_mxfp4(data, table, exp2, out):
    """float32 of GGML MXFP4 bytes: ``table[code] * exp2[e]`` (+0, as GGML decodes -0;
    GPU only; ``table`` the 16 E2M1 values, ``exp2`` the 256 E8M0 values, host)."""
    if out.size:
        blocks, threads = launch(out.size)
        _decode_mxfp4_kernel[blocks, threads](data, cuda.to_device(table),
                                              cuda.to_device(exp2), out)
