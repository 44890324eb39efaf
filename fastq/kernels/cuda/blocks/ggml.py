"""GGML legacy block formats (CUDA twin of ``fastq.kernels.cpu.blocks.ggml``): q8_0,
q4_0, q4_1, q5_0, q5_1.

Same interface and arithmetic (see the CPU module's docstring for the formulas, which
are llama.cpp's ``quantize_row_q4_0_ref`` etc. as ``gguf.quants`` writes them):
``quantize(x, kind, out) -> (nan_blocks, overflow_blocks)``, ``dequantize(data, kind,
out)`` and ``codes(data, kind, out)`` on 1-D device arrays.  Quantization runs one
thread per block of 32 (the block's max, scale and 32 codes are a short serial job);
dequantization and codes one thread per element.

Bit-exactness with the CPU rests on three things.  Every operation is float32 in the
CPU kernel's order, with float32 constants (a float64 operand would round twice).
Every product that feeds an addition goes through ``mul`` (libdevice's
``__fmul_rn``, which NVVM never fuses into an FMA: numba.cuda compiles with
contraction on even without ``fastmath``).  And float16 scales are encoded and decoded
with the CPU's integer bit arithmetic (``half_bits`` / ``half_value`` on the float32
bits), never with the GPU's float16 conversions.  One thing is not reproduced: a NaN
produced by arithmetic on the GPU is the canonical NaN (0x7FFFFFFF), where x86 gives
0xFFC00000 or the operand's payload; only blocks with a NaN or inf scale produce one.
"""
import numpy as np
from numba import cuda

from .. import SIMULATOR, launch, run_over

if SIMULATOR:  # Numba's CUDA simulator runs the kernels as Python on NumPy scalars
    @cuda.jit(device=True)
    def as_bits(f):
        """The bits (uint32) of the float32 ``f``."""
        return np.float32(f).view(np.uint32)

    @cuda.jit(device=True)
    def as_float(u):
        """The float32 with the bits of the uint32 ``u``."""
        return np.uint32(u).view(np.float32)

    @cuda.jit(device=True)
    def mul(a, b):
        """``a * b`` in float32, never fused with a following add."""
        return np.float32(a) * np.float32(b)
else:  # pragma: no cover - needs a GPU (or NVVM, tests/_ptx_check.py)
    from numba.core import types
    from numba.cuda import libdevice
    from numba.extending import intrinsic

    @intrinsic
    def as_bits(typingctx, f):
        """The bits (uint32) of the float32 ``f``."""
        if isinstance(f, types.Float) and f.bitwidth == 32:
            def codegen(context, builder, sig, args):
                return builder.bitcast(args[0], context.get_value_type(types.uint32))
            return types.uint32(f), codegen
        return None

    @intrinsic
    def as_float(typingctx, u):
        """The float32 with the bits of the uint32 ``u``."""
        if isinstance(u, types.Integer) and u.bitwidth == 32:
            def codegen(context, builder, sig, args):
                return builder.bitcast(args[0], context.get_value_type(types.float32))
            return types.float32(u), codegen
        return None

    mul = libdevice.fmul_rn


@cuda.jit(device=True, cache=True)
def block_bytes(kind):
    """Bytes of one block: q8_0 34, q4_0 18, q4_1 20, q5_0 22, q5_1 24."""
    return 34 if kind == 0 else 18 + 2 * (kind - 1)


@cuda.jit(device=True, cache=True)
def half_bits(f):
    """IEEE binary16 bits of the float32 ``f``, rounded half to even (the CPU's bit
    arithmetic); 0x7c00 (inf, with sign) from 65520 up; NaN 0x7e00."""
    u = np.int64(as_bits(f))
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a > 0x7F800000:
        return sign | 0x7E00
    if a >= 0x477FF000:
        return sign | 0x7C00
    if a < 0x38800000:  # a subnormal half: the float add rounds it (RNE)
        r = np.int64(as_bits(as_float(np.uint32(a)) + np.float32(0.5))) - 0x3F000000
        return sign | r
    mant_odd = (a >> 13) & 1
    a = a + (((15 - 127) << 23) + 0xFFF) + mant_odd
    return sign | (a >> 13)


@cuda.jit(device=True, cache=True)
def half_value(h):
    """The float32 value of the binary16 bits ``h`` (exact)."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:  # zero or subnormal: m * 2**-24, exact in float32
        v = np.float32(m) * np.float32(5.9604644775390625e-08)
        return -v if sign else v
    if e == 31:
        return as_float(np.uint32(sign | 0x7F800000 | (m << 13)))
    return as_float(np.uint32(sign | ((e + 112) << 23) | (m << 13)))


@cuda.jit(device=True, cache=True)
def get_half(data, o):
    return half_value(np.int64(data[o]) | (np.int64(data[o + 1]) << 8))


@cuda.jit(device=True, cache=True)
def put_half(out, o, bits):
    out[o] = bits & 0xFF
    out[o + 1] = (bits >> 8) & 0xFF


@cuda.jit(device=True, cache=True)
def to_byte(v):
    """The low byte of ``trunc(v)`` (int32 conversion), 0 where x86's is undefined."""
    if not (abs(v) < np.float32(2147483648.0)):
        return 0
    return np.int64(np.int32(v)) & 0xFF


@cuda.jit(device=True, cache=True)
def round_away_byte(v):
    """The low byte of ``roundf(v)`` (half away from zero), 0 where undefined."""
    a = abs(v)
    if not (a < np.float32(2147483648.0)):
        return 0
    i = np.int64(np.int32(a))
    if a - np.float32(i) >= np.float32(0.5):
        i += 1
    return (-i if v < 0 else i) & 0xFF


@cuda.jit(device=True, cache=True)
def _inverse(d):
    return np.float32(1.0) / d if d != 0 else np.float32(0.0)


@cuda.jit(device=True, cache=True)
def _abs_max(x, i0):
    """Magnitude bits of the largest ``|x|`` in the block (NaN above 0x7f800000) and the
    first element with them."""
    top, first = np.int64(0), 0
    for j in range(32):
        a = np.int64(as_bits(x[i0 + j])) & 0x7FFFFFFF
        if a > top:
            top, first = a, j
    return top, x[i0 + first]


@cuda.jit(device=True, cache=True)
def _quantize_block(x, kind, b, out):
    """Block ``b`` into its bytes; returns ``(magnitude bits of the max, half bits that
    decide overflow)``."""
    i0 = b * 32
    o = b * block_bytes(kind)
    five = kind >= 3
    cap = 31 if five else 15
    if kind == 0:  # q8_0: roundf(x / d), d = amax / 127
        top, big = _abs_max(x, i0)
        d = as_float(np.uint32(top)) / np.float32(127.0)
        dh = half_bits(d)
        put_half(out, o, dh)
        ident = _inverse(d)
        for j in range(32):
            out[o + 2 + j] = round_away_byte(mul(x[i0 + j], ident))
        return top, dh
    if kind == 1 or kind == 3:  # q4_0 / q5_0: trunc(x / d + 8.5), d = max / -8 (-16)
        top, big = _abs_max(x, i0)
        nmax = np.float32(16.0) if five else np.float32(8.0)
        d = big / -nmax
        dh = half_bits(d)
        put_half(out, o, dh)
        ident = _inverse(d)
        offset = nmax + np.float32(0.5)
        lo, q0, h0 = np.float32(0.0), o + (6 if five else 2), o + 2
        check = dh
    else:  # q4_1 / q5_1: trunc((x - min) / d + 0.5), d = (max - min) / 15 (31)
        top = np.int64(0)
        lo, hi = np.float32(3.4028234663852886e38), np.float32(-3.4028234663852886e38)
        for j in range(32):  # (of equal ones, the last: NumPy's min/max)
            v = x[i0 + j]
            top = max(top, np.int64(as_bits(v)) & 0x7FFFFFFF)
            lo = v if v <= lo else lo
            hi = v if v >= hi else hi
        d = (hi - lo) / np.float32(cap)
        dh, mh = half_bits(d), half_bits(lo)
        put_half(out, o, dh)
        put_half(out, o + 2, mh)
        ident = _inverse(d)
        offset = np.float32(0.5)
        q0, h0 = o + (8 if five else 4), o + 4
        check = dh if (mh & 0x7FFF) != 0x7C00 else mh
    qh = np.int64(0)
    for j in range(16):
        if kind == 1 or kind == 3:
            c0 = min(cap, to_byte(mul(x[i0 + j], ident) + offset))
            c1 = min(cap, to_byte(mul(x[i0 + j + 16], ident) + offset))
        else:
            c0 = min(cap, to_byte(mul(x[i0 + j] - lo, ident) + offset))
            c1 = min(cap, to_byte(mul(x[i0 + j + 16] - lo, ident) + offset))
        out[q0 + j] = (c0 & 0xF) | ((c1 & 0xF) << 4)
        qh |= ((c0 >> 4) << j) | ((c1 >> 4) << (j + 16))
    if five:
        for k in range(4):
            out[h0 + k] = (qh >> (8 * k)) & 0xFF
    return top, check


@cuda.jit(cache=True)
def _quantize_kernel(x, kind, out, counts):
    for b in range(cuda.grid(1), x.size // 32, cuda.gridsize(1)):
        top, check = _quantize_block(x, kind, b, out)
        if top > 0x7F800000:
            cuda.atomic.add(counts, 0, 1)
        elif (check & 0x7FFF) == 0x7C00:
            cuda.atomic.add(counts, 1, 1)


@cuda.jit(device=True, cache=True)
def _code(data, kind, i):
    """The stored code of element ``i`` (uint8 range; q8_0 the int8's byte)."""
    b, j = i // 32, i % 32
    o = b * block_bytes(kind)
    if kind == 0:
        return np.int64(data[o + 2 + j])
    q0 = o + block_bytes(kind) - 16
    byte = np.int64(data[q0 + j % 16])
    code = (byte >> 4) if j >= 16 else (byte & 0xF)
    if kind >= 3:
        h0 = o + (2 if kind == 3 else 4)
        code |= ((np.int64(data[h0 + j // 8]) >> (j % 8)) & 1) << 4
    return code


@cuda.jit(cache=True)
def _dequantize_kernel(data, kind, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        o = (i // 32) * block_bytes(kind)
        d = get_half(data, o)
        q = _code(data, kind, i)
        if kind == 0:  # int8 * d
            out[i] = np.float32(q - 256 if q >= 128 else q) * d
        elif kind == 1 or kind == 3:  # d * (q - 8) (q - 16)
            out[i] = d * np.float32(q - (8 if kind == 1 else 16))
        else:  # d * q + m
            out[i] = mul(d, np.float32(q)) + get_half(data, o + 2)


@cuda.jit(cache=True)
def _codes_kernel(data, kind, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _code(data, kind, i)


def quantize(x, kind, out):
    """See ``fastq.kernels.cpu.blocks.ggml``: the device float32 ``x`` (whole blocks)
    into the device bytes ``out``; returns (blocks with a NaN, blocks whose float16
    scale overflows)."""
    nb = x.size // 32
    if nb == 0:
        return 0, 0
    counts = cuda.to_device(np.zeros(2, np.int64))
    blocks, threads = launch(nb)
    _quantize_kernel[blocks, threads](x, kind, out, counts)
    nan, overflow = counts.copy_to_host()
    return int(nan), int(overflow)


def dequantize(data, kind, out):
    """See ``fastq.kernels.cpu.blocks.ggml``: block bytes to the device float32 ``out``."""
    run_over(_dequantize_kernel, out.size, data, kind, out)


def codes(data, kind, out):
    """Each element's stored code into the device uint8 ``out`` (whole blocks of 32)."""
    run_over(_codes_kernel, out.size, data, kind, out)
