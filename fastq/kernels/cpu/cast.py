"""Float format conversion kernels on integer bit views (CPU): the entry points, which
pick the loop of ``fastq.kernels.cpu.floatbits`` each cast runs.

Every kernel is generic over the formats: the bit layout comes in the ``params`` array
built by ``fastq.core.formats`` (see the ``E_*`` / ``D_*`` indices there), whose dtype is the
word type the arithmetic runs in (uint32 for float32 sources, uint64 for float64).  The
rounding (half to even, truncation, stochastic with its counter-based random stream) is
described in ``fastq.kernels.cpu.floatbits.rounding``, which holds its rules.
"""
import functools
import platform

import numpy as np
from numba import config

from ...core import formats as F
from .floatbits.decode import decode_parallel, decode_slice
from .floatbits.encode import (encode_halved_parallel, encode_halved_slice, encode_parallel,
                               encode_slice, encode_via32_parallel, encode_via32_slice)
from .floatbits.native import (decode_native16_parallel, decode_native16_slice,
                               encode_native16_parallel, encode_native16_slice,
                               widen_parallel, widen_slice)
from .floatbits.stochastic import encode_stochastic_parallel, encode_stochastic_slice
from .parallel import SliceCall, launch
from .word import FP_NEAREST_EVEN, FP_TOWARD_ZERO


def launch_cast(serial, parallel, src, dst, args):
    """``parallel.launch`` for a cast: on one thread the output is written plainly (see
    there: the casts' streaming loop loses on one thread)."""
    launch(serial, parallel, src, dst, args, stream_alone=False)


def encode(src_f, dst, params, sub_scale, rounding, key):
    """Round the 1-D contiguous float array ``src_f`` into the bits ``dst`` (1-D, same size).

    ``params`` has the dtype of ``src_f``'s bits; ``rounding``: 0 truncate,
    1 nearest-even, 2 stochastic with the 64-bit ``key``.  float32/float64 -> IEEE float16
    (truncated or half to even, without saturation) runs on the conversion instruction
    where there is one.
    """
    src_u = src_f.view(params.dtype)
    control = _native_control(params, dst, rounding)
    if control is not None:
        launch_cast(encode_native16_slice, encode_native16_parallel, src_f, dst,
                    (src_f, src_u, dst, params, control))
    elif rounding != 2 and params.size == 2 * F.E_LEN:  # float64 -> bfloat16
        p32 = params[F.E_LEN:].astype(np.uint32)
        launch_cast(encode_via32_slice, encode_via32_parallel, src_f, dst,
                    (src_f, src_u, dst, params, p32, bool(rounding)))
    elif rounding == 2:
        launch_cast(encode_stochastic_slice, encode_stochastic_parallel, src_f, dst,
                    (src_u, dst, params, key, 0))
    elif halved_rne(params, dst, rounding):  # float32 -> bfloat16
        launch_cast(encode_halved_slice, encode_halved_parallel, src_f, dst,
                    (src_u, dst, params))
    else:
        launch_cast(encode_slice, encode_parallel, src_f, dst,
                    (src_u, dst, params, sub_scale, bool(rounding)))


def _native_control(params, half, rounding):
    """The control word for ``encode_native16_slice`` when it computes this encode
    exactly (float32/float64 -> IEEE float16, truncate or half to even, no saturation, on
    a CPU with the instruction), else None."""
    if (rounding in (0, 1) and params[F.E_INF_OUT] == 0x7C00
            and _float16_pair(params, half, params[F.E_SHIFT])
            and native_float16(8 * params.itemsize)):
        return np.uint32(FP_NEAREST_EVEN if rounding == 1 else FP_TOWARD_ZERO)
    return None


def _float16_pair(params, half, shift):
    """Whether ``params`` convert between float32 or float64 and IEEE float16 (the bits
    ``half``): 32-bit words 13 mantissa bits apart, or 64-bit words 42 apart, which no
    other pair of formats is.  Those casts run on conversion instructions where they exist."""
    return half.dtype == np.uint16 and (params.dtype, shift) in ((np.uint32, 13),
                                                                 (np.uint64, 42))


@functools.cache
def native_float16(source_bits=32):
    """Whether compiled code converts float32 (``source_bits`` 32) or float64 (64) to and
    from float16 with one instruction that rounds exactly as the integer kernel does, when
    Numba compiles for this CPU: x86 with F16C for float32, AVX512-FP16 for float64.
    (Elsewhere LLVM would call a soft-float routine Numba may not link.)"""
    import llvmlite.binding as llvm
    feature = {32: "f16c", 64: "avx512fp16"}[source_bits]
    return (platform.machine().lower() in ("x86_64", "amd64")
            and config.CPU_NAME in (None, "host") and not config.CPU_FEATURES
            and bool(llvm.get_host_cpu_features().get(feature)))


def halved_rne(params, dst, rounding):
    """Whether ``encode`` rounds float32 to the top half of its bits (bfloat16) half to
    even, without saturation: ``encode_halved_slice`` gives those bits."""
    return (rounding == 1 and params.dtype == np.uint32 and dst.dtype == np.uint16
            and params.size == F.E_LEN and params[F.E_SHIFT] == 16
            and params[F.E_REBIAS] == 0 and params[F.E_NORM_MIN] == 0
            and params[F.E_OVF_CODE] == params[F.E_INF_OUT] == params[F.E_INF_BITS] >> 16)


def decode(src, dst, params, sub_magic):
    """Widen the 1-D bits ``src`` exactly into the bits ``dst`` (1-D, same size)."""
    if (params.dtype == np.uint32 and _float16_pair(params, src, params[F.D_SHIFT])
            and native_float16()):  # float16 -> float32
        launch_cast(decode_native16_slice, decode_native16_parallel, src, dst,
                    (src, dst, params))
    else:
        launch_cast(decode_slice, decode_parallel, src, dst, (src, dst, params, sub_magic))


def copyto(dst, src):
    """``dst[...] = src`` for 1-D contiguous arrays: a copy, or float32 -> float64 as x86
    widens (exact; a signaling NaN comes out quiet with its payload, as in NumPy)."""
    if dst.dtype == src.dtype:
        np.copyto(dst, src)
    else:
        launch_cast(widen_slice, widen_parallel, src, dst, (src, dst))


def planned_encode(dst_word, params, sub_scale, rounding):
    """The ``SliceCall`` (``fastq.kernels.cpu.parallel``) of ``encode`` from floats
    whose bits are ``params.dtype`` into bits of ``dst_word``, running the kernels
    ``encode`` chooses; None for stochastic rounding."""
    control = _native_control(params, np.empty(0, dst_word), rounding)
    src_word = params.dtype
    if control is not None:
        return SliceCall(encode_native16_slice, encode_native16_parallel, src_word,
                         dst_word, True, (params, control))
    if rounding != 2 and params.size == 2 * F.E_LEN:  # float64 -> bfloat16
        return SliceCall(encode_via32_slice, encode_via32_parallel, src_word, dst_word,
                         True, (params, params[F.E_LEN:].astype(np.uint32), bool(rounding)))
    if rounding == 2:
        return None
    if halved_rne(params, np.empty(0, dst_word), rounding):
        return SliceCall(encode_halved_slice, encode_halved_parallel, src_word, dst_word,
                         False, (params,))
    return SliceCall(encode_slice, encode_parallel, src_word, dst_word, False,
                     (params, sub_scale, bool(rounding)))


def planned_decode(src_word, dst_word, params, sub_magic):
    """The ``SliceCall`` (``fastq.kernels.cpu.parallel``) of ``decode`` of the bits
    ``src_word`` into bits of ``dst_word``, running the kernels ``decode`` chooses."""
    if (params.dtype == np.uint32 and _float16_pair(params, np.empty(0, src_word),
                                                    params[F.D_SHIFT])
            and native_float16()):
        return SliceCall(decode_native16_slice, decode_native16_parallel, src_word,
                         dst_word, False, (params,))
    return SliceCall(decode_slice, decode_parallel, src_word, dst_word, False,
                     (params, sub_magic))
