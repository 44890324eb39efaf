"""``fq.cast``: bit-exact conversion between float formats."""
import os

import numpy as np

from ..core import checks
from ..backend import CPU, CUDA, select
from ..core import formats
from ..runtime import device
from ..runtime.pool import POOLED_FROM
from ..runtime.fpenv import ieee_default

ROUNDINGS = {"truncate": 0, "nearest_even": 1, "stochastic": 2}
# Validated deterministic casts of native host arrays, by (source dtype, target name,
# rounding, saturate): a repeated call skips the checks and the planning.
MAX_PLANS = 256
_plans = {}


@ieee_default
def cast(x, to, rounding="nearest_even", seed=None, saturate=None, out=None, backend="auto"):
    """Convert ``x`` to the float format ``to``, bit-exact with the reference libraries.

    Parameters
    ----------
    x : array_like
        float16, bfloat16, float32 or float64 values, any shape, strides or byte order.
    to : str or dtype
        ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"`` (or the dtype), or
        an extended format: ``"float8_e4m3fn"``, ``"float8_e5m2"``, ``"float4_e2m1fn"``,
        ``"float8_e8m0fnu"`` (ml_dtypes arrays; ``x`` may be one of them to decode).
    rounding : {"nearest_even", "truncate", "stochastic"}
        How a value between two representable ones is rounded when narrowing:
        to nearest with ties to even (IEEE 754 default), toward zero, or up with
        probability equal to the discarded fraction ``(|x| - lo) / (hi - lo)``.
        Widening casts are exact and ignore it.
    seed : int, optional
        Only with ``rounding="stochastic"``: element ``i`` (C order) draws its random
        word from a pure function of ``(seed, i)``: the seed is mixed into a 64-bit key
        by the SplitMix64 finalizer, and the word is Chris Wellons' lowbias32 hash of the
        low 32 bits of ``i`` under two 32-bit keys derived from that key and the high
        bits of ``i`` (see ``fastq.kernels.cpu.floatbits.rounding``), so the same seed
        gives the same bits on any thread count or backend.  ``None`` draws a fresh seed.
    saturate : bool, optional
        Map values beyond the target's largest finite value (and ±inf) to ±max instead of
        ±inf.  Default ``False`` for IEEE-like formats (NumPy/ml_dtypes behaviour).  For
        the extended formats ``False`` is ``astype`` of ml_dtypes bit for bit (e4m3fn:
        overflow and inf -> NaN; e2m1fn always saturates) and ``True`` is ONNX's
        ``Cast(saturate=1)`` (NaN stays NaN; E8M0: finite overflow -> 2**127, as
        ``onnx.numpy_helper.to_float8e8m0(round_mode="nearest")``).
    out : ndarray, optional
        Preallocated result of ``x.shape`` and the target dtype; left untouched on error.
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` runs on the GPU when ``x`` is a CUDA array (``__cuda_array_interface__``).
        On the GPU, a CUDA ``x`` gives a device result (``out`` must then be a CUDA array
        too; bring it back with ``fq.to_host``); a host ``x`` with ``backend="cuda"`` is
        copied in and the result copied back: a host array, as on the CPU.

    Returns
    -------
    ndarray or device array
        C-contiguous, ``x.shape``, dtype ``float16``/``ml_dtypes.bfloat16``/...

    Notes
    -----
    float32/float64 -> float16 equals ``x.astype(np.float16)`` bit for bit (NumPy rounds
    float64 once, directly; NaN keeps its top payload bits, as NumPy does).
    float32 -> bfloat16 equals ``x.astype(ml_dtypes.bfloat16)`` (every NaN becomes the quiet
    NaN, sign kept).  float64 -> bfloat16 is rounded once, directly (correctly rounded),
    as ml_dtypes 0.7 does (older ml_dtypes rounded twice, through float32).  Decoding is
    exact.
    """
    if type(x) is np.ndarray and backend == "auto" and seed is None:
        # a repeated cast of a host array: its plan is cached (the small-call path)
        plan = _plans.get((x.dtype, to, rounding, saturate)) if type(to) is str else None
        flags = x.flags.num if plan is not None else 0
        if flags & 1 and (out is None or _direct_out(out, x, plan.dst_dtype)):  # (C order)
            result = out
            if result is None:  # (small outputs straight from NumPy: see ``pool``)
                result = np.empty(x.shape, plan.dst_dtype) if \
                    x.size * plan.dst_dtype.itemsize < POOLED_FROM else \
                    CPU.empty(x.shape, plan.dst_dtype)
            if plan.call is not None:  # (the kernels' compiled code, called directly)
                plan.call(x.ravel(), result.ravel(), flags)
            else:
                run_cast(plan, x.reshape(-1), result.reshape(-1), CPU)
            return result
    if select(backend, x, out).on_gpu:
        return _cast_cuda(x, to, rounding, seed, saturate, out)
    x = checks.as_float_array(x)
    plan = plan_cast(x.dtype, to, rounding, seed, saturate)
    if seed is None and plan.rounding != ROUNDINGS["stochastic"] and x.dtype.isnative and \
            type(to) is str and len(_plans) < MAX_PLANS:
        plan.call = planned_call(plan)
        _plans[(x.dtype, to, rounding, saturate)] = plan
    out = checks.check_out(out, x.shape, plan.dst.dtype)
    result = out if out is not None and checks.direct_target(out, x) else \
        CPU.empty(x.shape, plan.dst.dtype)
    run_cast(plan, checks.native_contiguous(x).reshape(-1), result.reshape(-1), CPU)
    if out is not None and result is not out:
        np.copyto(out, result)
        return out
    return result


OUT_FLAGS = 0x501  # C-contiguous, aligned and writeable: what np.empty gives


def _direct_out(out, x, dtype):
    """Whether ``out`` can take the small-call path's result directly: an aligned,
    writeable C-contiguous ndarray of ``x``'s shape and the target ``dtype``, apart from
    ``x`` in memory (anything else goes through the full checks)."""
    return (type(out) is np.ndarray and out.dtype == dtype and out.shape == x.shape
            and out.flags.num & OUT_FLAGS == OUT_FLAGS and not np.may_share_memory(out, x))


def _cast_cuda(x, to, rounding, seed, saturate, out):
    """The GPU path: the same plan and ``run_cast``, with the CUDA kernel module."""
    kernels = CUDA.kernels("cast")
    x, on_host = device.float_input(x)
    plan = plan_cast(x.dtype, to, rounding, seed, saturate)
    if on_host:
        out = checks.check_out(out, x.shape, plan.dst.dtype)
        src = device.to_device(x.reshape(-1))
    else:
        out = device.check_out(out, x.shape, plan.dst.dtype)
        src = x.reshape(x.size)
    result = CUDA.empty(x.size, plan.dst.dtype)
    run_cast(plan, src, result, CUDA)
    if on_host:
        host = device.to_host(result).reshape(x.shape)
        if out is None:
            return host
        np.copyto(out, host)
        return out
    if out is None:
        return result.reshape(x.shape)
    kernels.copyto(out.reshape(out.size), result)
    return out


class CastPlan:
    """What a validated cast does: formats, kernel parameters, rounding, random key."""

    def __init__(self, src, dst, rounding, key, saturate):
        self.src, self.dst, self.rounding, self.key = src, dst, rounding, key
        self.dst_dtype = dst.dtype
        self.call = None  # (a cached plan's ``planned_call``)
        f32 = formats.FORMATS["float32"]
        # An extended source is decoded by its table: straight into a 16/32-bit target,
        # else into float32, which ``then`` (a plan from float32) carries on from.
        self.table, self.then = None, None
        if src.extended and src is not dst:
            via = dst if dst.width in (16, 32) else f32
            self.table = formats.decode_table(src, via)
            if via is not dst:
                self.then = CastPlan(f32, dst, rounding, key, saturate)
            return
        self.widen = dst.mant_bits >= src.mant_bits and dst.exp_bits >= src.exp_bits
        if dst.exponent_only:  # E8M0: its own codec, from float32 or float64 bits
            self.widen = False
            self.via = src if src.width >= 32 else f32
            self.params = formats.e8m0_params(self.via, saturate, truncate=rounding == 0)
        elif self.widen:
            # 16-bit -> float32 in a kernel; float64 via float32 where the reference does so
            self.via = (f32 if src.decode_via_float32 and dst.width == 64 else dst)
            self.params, self.sub_magic = (formats.decode_params(src, self.via)
                                           if src.width < 32 else (None, None))
        else:
            via = src if src.width >= 32 else f32
            self.via = via
            self.params, self.sub_scale = formats.encode_params(via, dst, saturate,
                                                                 truncate=rounding == 0)


def planned_call(plan):
    """The CPU kernels' prepared call (``SliceCall``) of a plan that runs one encode or
    decode kernel: a repeated cast then calls their compiled code directly; None for
    the others (an extended format, a copy, a cast in two steps)."""
    if plan.table is not None or plan.src is plan.dst:
        return None
    kernels = CPU.kernels("cast")
    if not plan.widen and plan.via is plan.src and not plan.dst.exponent_only:
        return kernels.planned_encode(plan.dst.word, plan.params, plan.sub_scale,
                                      plan.rounding)
    if plan.widen and plan.params is not None and plan.via is plan.dst:
        return kernels.planned_decode(plan.src.word, plan.dst.word, plan.params,
                                      plan.sub_magic)
    return None


def plan_cast(src_dtype, to, rounding, seed, saturate):
    """Validate the cast arguments (everything but ``x`` and ``out``)."""
    dst = formats.format_named(to)
    mode = ROUNDINGS[checks.check_choice(rounding, "rounding", ROUNDINGS)]
    if seed is not None and mode != 2:
        raise ValueError("seed is only used with rounding='stochastic'")
    if saturate is not None and not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be a bool or None, got {type(saturate).__name__}")
    return CastPlan(formats.format_of_dtype(src_dtype), dst, mode, stream_key(seed),
                    bool(saturate))


def stream_key(seed):
    """The 64-bit key of the stochastic-rounding stream for ``seed``."""
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    elif isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    elif not 0 <= int(seed) < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    z = (int(seed) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(z ^ (z >> 31))


def run_cast(plan, src, dst, backend):
    """Run a planned cast on 1-D contiguous ``src`` into 1-D contiguous ``dst``.

    ``backend`` (a ``fastq.backend.Backend``) allocates the intermediates and gives the
    cast kernels: ``encode``, ``decode`` and ``copyto`` (a copy, or float32 -> float64).
    """
    kernels, empty = backend.kernels("cast"), backend.empty
    copyto = kernels.copyto
    if plan.table is not None:  # an extended source: its table, then maybe a cast on
        decode = backend.kernels("minifloat").decode
        if plan.then is None:
            decode(src.view(np.uint8), dst.view(plan.dst.word), backend.to_device(plan.table))
            return
        wide = empty(src.shape, np.float32)
        decode(src.view(np.uint8), wide.view(np.uint32), backend.to_device(plan.table))
        run_cast(plan.then, wide, dst, backend)
        return
    if plan.src is plan.dst:
        copyto(dst, src)
    elif plan.widen and plan.params is None:
        copyto(dst, src)  # float32 -> float64: exact, NumPy's widening
    elif plan.widen and plan.via is not plan.dst:
        wide = empty(src.shape, np.float32)
        kernels.decode(src.view(plan.src.word), wide.view(np.uint32), plan.params,
                       plan.sub_magic)
        copyto(dst, wide)
    elif plan.widen:
        kernels.decode(src.view(plan.src.word), dst.view(plan.dst.word), plan.params,
                       plan.sub_magic)
    else:
        if plan.via is not plan.src:  # 16-bit -> other 16-bit: exact widening first
            wide = empty(src.shape, np.float32)
            kernels.decode(src.view(plan.src.word), wide.view(np.uint32),
                           *formats.decode_params(plan.src, plan.via))
            src = wide
        if plan.dst.exponent_only:
            backend.kernels("minifloat").encode_e8m0(src.view(plan.via.word), dst.view(
                np.uint8), plan.params, plan.rounding, plan.key)
            return
        kernels.encode(src, dst.view(plan.dst.word), plan.params, plan.sub_scale,
                       plan.rounding, plan.key)
