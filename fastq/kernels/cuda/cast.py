"""Float format conversion kernels on integer bit views (CUDA twin of ``fastq.kernels.cpu.cast``).

Same functions, same parameter arrays (``fastq.core.formats``), same rounding and the same
stochastic-rounding stream as the CPU kernels (``fastq.kernels.cpu.floatbits.rounding``): element
``i`` (C order) draws ``lowbias32(lo32(i) ^ k1)`` (and, for float64 sources, that word
shifted up 32 ORed with ``lowbias32(lo32(i) ^ k2)``), ``k1, k2 = stream_keys(key,
hi32(i))``, so a seed gives the same bits on either backend.

All integer arithmetic runs in uint64 whatever the source width (numba types
``uint32 op uint32`` as 64-bit anyway, and a 32-bit word never overflows 64 bits here);
where the CPU kernels let an unsigned subtraction wrap around, the result is discarded
by a later select, so a saturating subtraction gives the same codes.  Shift amounts stay
below 64.  Bits are reinterpreted through float views of the same device memory
(``abs(x)`` reads the float; a subnormal decode writes it, ``m * 2**(emin - M)``, exact
in float64 and in the target), and round-half-even is the exact magic-number ``_rint``
(numba.cuda has no ``np.rint``).  No ``fastmath``.  NVVM contracts ``a * b + c`` into an
FMA even so (numba.cuda passes no ``-fma=0``); the only products here scale by a power of
two and are exact, so a fused add rounds exactly as the separate one would.
"""
import numpy as np
from numba import cuda

from ...core import formats as F
from . import launch

U64 = np.uint64


@cuda.jit(device=True, cache=True)
def _rint(v, magic):
    """Round-half-even of ``v >= 0`` (``magic = 2**mant_bits`` of v's float type); exact."""
    return (v + magic) - magic if v < magic else v


@cuda.jit(device=True, cache=True)
def lowbias32(x):
    """Chris Wellons' lowbias32 hash of the uint32 in ``x`` (a uint64 below 2**32)."""
    m32 = U64(0xFFFFFFFF)
    x = x ^ (x >> U64(16))
    x = (x * U64(0x7FEB352D)) & m32
    x = x ^ (x >> U64(15))
    x = (x * U64(0x846CA68B)) & m32
    return x ^ (x >> U64(16))


@cuda.jit(device=True, cache=True)
def stream_keys(key, hi):
    """The two 32-bit keys of the random stream for indices whose top 32 bits are ``hi``."""
    m32 = U64(0xFFFFFFFF)
    k1 = lowbias32((key & m32) ^ lowbias32(hi ^ (key >> U64(32))))
    return k1, lowbias32((k1 + U64(0x9E3779B9)) & m32)


@cuda.jit(device=True, cache=True)
def _finish(a, b, code, p):
    """NaN codes, then the sign: the output word of source bits ``b`` (``a = |b|``)."""
    nan = max(U64(p[F.E_NAN_BASE]) | ((a >> U64(p[F.E_SHIFT])) & U64(p[F.E_NAN_MASK])),
              U64(p[F.E_NAN_MIN]))
    code = nan if a > U64(p[F.E_INF_BITS]) else code
    # (XOR: float4_e2m1fn's "NaN" is the zero of the opposite sign, as ml_dtypes)
    return code ^ ((b >> U64(p[F.E_SIGN_SHIFT])) & U64(p[F.E_SIGN_BIT]))


@cuda.jit(cache=True)
def _encode_kernel(src_u, src_f, dst, p, sub_scale, magic, rne):
    s, half_m1, rebias = U64(p[F.E_SHIFT]), U64(p[F.E_HALF_M1]), U64(p[F.E_REBIAS])
    norm_min, ovf_code = U64(p[F.E_NORM_MIN]), U64(p[F.E_OVF_CODE])
    inf_bits, abs_mask = U64(p[F.E_INF_BITS]), U64(p[F.E_ABS_MASK])
    inf_out = U64(p[F.E_INF_OUT])
    for i in range(cuda.grid(1), src_u.size, cuda.gridsize(1)):
        b = U64(src_u[i])
        a = b & abs_mask
        bias = half_m1 + ((a >> s) & U64(1)) if rne else U64(0)
        code = (a + bias) >> s
        code = min(code - rebias if code >= rebias else U64(0), ovf_code)
        if a < norm_min:  # |x| in units of the target's subnormal step: exact
            v = abs(src_f[i]) * sub_scale
            code = U64(_rint(v, magic) if rne else v)
        code = inf_out if a == inf_bits else code
        dst[i] = _finish(a, b, code, p)


@cuda.jit(cache=True)
def _encode_stochastic_kernel(src_u, dst, p, key, width, offset):
    s, rebias, norm_min = U64(p[F.E_SHIFT]), U64(p[F.E_REBIAS]), U64(p[F.E_NORM_MIN])
    norm_exp, mant_bits = U64(p[F.E_NORM_EXP]), U64(p[F.E_MANT_BITS])
    ovf_code, abs_mask = U64(p[F.E_OVF_CODE]), U64(p[F.E_ABS_MASK])
    one, top = U64(1), width - U64(1)
    mant_mask = (one << mant_bits) - one
    hi = one << U64(63)  # no index has this high word: the keys are made on first use
    k1, k2 = U64(0), U64(0)
    for i in range(cuda.grid(1), src_u.size, cuda.gridsize(1)):
        g = offset + U64(i)
        if (g >> U64(32)) != hi:
            hi = g >> U64(32)
            k1, k2 = stream_keys(key, hi)
        b = U64(src_u[i])
        a = b & abs_mask
        counter = g & U64(0xFFFFFFFF)
        r = lowbias32(counter ^ k1)
        if width == U64(64):
            r = (r << U64(32)) | lowbias32(counter ^ k2)
        code = (a + (r >> (width - s))) >> s
        code = min(code - rebias if code >= rebias else U64(0), ovf_code)
        if a < norm_min:  # shift the integer significand by a per-element amount
            e = a >> mant_bits
            m = (a & mant_mask) | ((one if e != U64(0) else U64(0)) << mant_bits)
            t, e1 = s + norm_exp, max(e, one)
            sh = min(max(t - e1 if t >= e1 else U64(4096), one), U64(4096))
            m = m >> min(sh - min(sh, top), top)  # keep the top bits when sh > top
            sh = min(sh, top)
            code = (m + (r >> (width - sh))) >> sh
        dst[i] = _finish(a, b, code, p)


@cuda.jit(cache=True)
def _decode_kernel(src, dst, dst_f, p, sub_step):
    shift, rebias, sub_lim = U64(p[F.D_SHIFT]), U64(p[F.D_REBIAS]), U64(p[F.D_SUB_LIM])
    special_min, exp_all = U64(p[F.D_SPECIAL_MIN]), U64(p[F.D_EXP_ALL])
    abs_mask, sign_mask = U64(p[F.D_ABS_MASK]), U64(p[F.D_SIGN_MASK])
    sign_shift = U64(p[F.D_SIGN_SHIFT])
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        h = U64(src[i])
        a = h & abs_mask
        if a < sub_lim:  # subnormal source m * 2**(emin - M): exact in float64 and in dst
            v = np.float64(a) * sub_step
            dst_f[i] = -v if h & sign_mask else v
        else:
            bits = (a << shift) + rebias
            bits = (a << shift) | exp_all if a >= special_min else bits
            dst[i] = bits | ((h & sign_mask) << sign_shift)


@cuda.jit(cache=True)
def _widen_kernel(src, dst, dst_f):
    """float32 bits -> float64 bits as x86 widens (NumPy's ``astype``), for any NaN.

    A NaN keeps its payload and gets the quiet bit (the GPU's ``cvt.f64.f32`` may not);
    other values convert exactly (a float32 subnormal ``m * 2**-149`` through the float).
    """
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        b = U64(src[i])
        a, sign = b & U64(0x7FFFFFFF), (b >> U64(31)) << U64(63)
        if a < U64(0x00800000):
            v = np.float64(a) * np.float64(2.0 ** -149)
            dst_f[i] = -v if sign else v
        elif a < U64(0x7F800000):
            dst[i] = sign | ((a << U64(29)) + (U64(896) << U64(52)))
        else:
            quiet = U64(0x0008000000000000) if a > U64(0x7F800000) else U64(0)
            dst[i] = sign | U64(0x7FF0000000000000) | ((a & U64(0x7FFFFF)) << U64(29)) | quiet


@cuda.jit(cache=True)
def _copy_kernel(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]


def _device_params(params):
    return cuda.to_device(np.ascontiguousarray(params))


def encode(src_f, dst, params, sub_scale, rounding, key):
    """Round the 1-D contiguous device float array ``src_f`` into the device bits ``dst``.

    Same contract as ``fastq.kernels.cpu.cast.encode``: ``params`` (the host array of
    ``fastq.core.formats.encode_params``) has the dtype of ``src_f``'s bits; ``rounding``:
    0 truncate, 1 nearest-even, 2 stochastic with the 64-bit ``key``.
    """
    src_u = src_f.view(params.dtype)
    n = src_u.size
    if n == 0:
        return
    p = _device_params(params)
    blocks, threads = launch(n)
    if rounding == 2:
        width = U64(8 * params.dtype.itemsize)
        _encode_stochastic_kernel[blocks, threads](src_u, dst, p, U64(key), width, U64(0))
    else:
        ftype = np.dtype(src_f.dtype).type
        magic = ftype(2.0 ** np.finfo(ftype).nmant)
        _encode_kernel[blocks, threads](src_u, src_f, dst, p, ftype(sub_scale), magic,
                                        bool(rounding))


def decode(src, dst, params, sub_magic):
    """Widen the 1-D device bits ``src`` exactly into the device bits ``dst`` (same size).

    Same contract as ``fastq.kernels.cpu.cast.decode``; ``sub_magic = 2**emin`` of the source
    (``fastq.core.formats.decode_params``) gives the subnormal step ``2**(emin - M)``.
    """
    n = src.size
    if n == 0:
        return
    ftype = np.float32 if dst.dtype.itemsize == 4 else np.float64
    src_mant = int(params[F.D_ONE_EXP]).bit_length() - 1 - int(params[F.D_SHIFT])
    sub_step = np.float64(sub_magic) / np.float64(2.0 ** src_mant)
    blocks, threads = launch(n)
    _decode_kernel[blocks, threads](src, dst, dst.view(ftype), _device_params(params),
                                    sub_step)


def copyto(dst, src):
    """``np.copyto`` for 1-D contiguous device arrays: a copy, or float32 -> float64."""
    if src.size == 0:
        return
    blocks, threads = launch(src.size)
    if dst.dtype != src.dtype:  # float32 -> float64
        _widen_kernel[blocks, threads](src.view(np.uint32), dst.view(np.uint64), dst)
        return
    word = np.dtype(f"u{src.dtype.itemsize}")
    _copy_kernel[blocks, threads](src.view(word), dst.view(word))
