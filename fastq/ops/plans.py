"""Plans of recent ``quantize`` calls, and the prepared path of static per-tensor ones.

A plan (:class:`QuantizePlan`) holds the validated facts a call's arguments fix
(backend and kernels, code range, view, grid), cached by those arguments: a repeated
call skips the checks and the layout arithmetic, which run with caches cold after a
pass over a large input.  A repeated static per-tensor call with scalar parameters goes
further (``static_per_tensor``): its plan's ``tensor_call`` runs the kernel with the
least Python.
"""
import math

import numpy as np

from ..core.flags import BAD_SCALE, INF, NAN
from ..runtime import threads
from .linear import KEY_FLAGS
from .qtensor import checked_qtensor

MAX_PLANS = 256
_plans = {}  # plan key -> QuantizePlan


class QuantizePlan:
    """What a ``quantize`` call's arguments fix, validated: where it runs (``backend``,
    ``kernels``), the code range (``qmin``, ``qmax``, ``bits``, ``code_dtype``; ``kernel_bits``
    the width the kernels write: 8 where codes are packed after the kernels), ``scheme``,
    ``nan_policy``, the input's ``shape``/``size``, ``blocks`` per dimension, the
    parameters' ``param_shape`` and full-rank ``grid``, the canonical ``view`` of the
    last dimensions from ``lead`` on (``lead`` > 0: more than 3 blocked dimensions, the
    first ``lead`` taken an index at a time), whether the input is ``ready`` (native float32,
    C-contiguous) and ``on_host``, ``tensor_call`` (static per tensor, or None),
    ``one_call`` (dynamic quantization of a ready input runs in one kernel call),
    ``dynamic_call`` (then, or for one parameter group: the kernels' prepared call, as
    ``dynamic_prepared`` runs it; else None), ``fake_call`` (the same for dynamic fake
    quantization; None unless ``one_call``) and ``static_calls`` (given parameters of
    several groups: the kernels' prepared calls of codes and of fake values, made on
    the first such call (``static_prepared``); None until then, False where there are
    none)."""
    __slots__ = ("backend", "kernels", "dtype", "qmin", "qmax", "bits", "kernel_bits",
                 "code_dtype", "scheme", "nan_policy", "granularity", "on_host", "ready",
                 "shape", "size", "blocks", "param_shape", "tensor_call", "dynamic_call",
                 "fake_call", "static_calls", "grid", "view", "lead", "one_call")

    def __init__(self, **facts):
        self.static_calls = None
        for name, value in facts.items():
            setattr(self, name, value)


def cached(key):
    """The plan cached under ``key`` (None: not cached, or no key)."""
    return _plans.get(key) if key is not None else None


def cache_size():
    return len(_plans)
# Scalar types of a scale and zero point that ``static_per_tensor`` takes (others take
# the general path).
SCALAR_SCALES = frozenset((float, np.float16, np.float32, np.float64))
SCALAR_ZEROS = frozenset((int, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                          np.int64, np.uint64))


def plan_key(x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
    """A hashable key for a host ndarray call, or None (no plan cached)."""
    if type(x) is not np.ndarray or backend not in ("auto", "cpu"):
        return None
    key = (x.shape, x.dtype, x.flags.num & KEY_FLAGS, dtype, scheme, granularity,
           type(narrow_range), narrow_range, nan_policy)  # (type: 1 is not a bool)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def remember(key, plan):
    """Cache ``plan`` under ``key`` (all plans dropped when there are ``MAX_PLANS``)."""
    if len(_plans) >= MAX_PLANS:
        _plans.clear()
    _plans[key] = plan


def check_nan(has_nan, nan_policy):
    """The one NaN error: after a range or quantize pass (whose output is ours until
    returned), a NaN met raises unless NaN is ignored."""
    if has_nan and nan_policy == "raise":
        raise ValueError("x contains NaN (use nan_policy='ignore' to leave NaN out of the "
                         "range and code it as the zero point)")


def check_range(has_nan, has_inf, nan_policy):
    """After a range pass: a NaN or inf in a range raises unless ignored."""
    check_nan(has_nan, nan_policy)
    if nan_policy == "raise" and has_inf:
        raise ValueError("x contains inf: the range cannot be computed (give scale=, "
                         "or use nan_policy='ignore')")


def _host_plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
    """The cached plan of a host ndarray call, or None: its key built here as
    ``plan_key`` builds it (a tuple and one dict lookup: the path of a repeated small
    call, where each step is a visible share)."""
    if type(x) is not np.ndarray or (backend != "auto" and backend != "cpu"):
        return None
    try:
        return _plans.get((x.shape, x.dtype, x.flags.num & KEY_FLAGS, dtype, scheme,
                           granularity, type(narrow_range), narrow_range, nan_policy))
    except TypeError:  # (an unhashable argument: the general path says which)
        return None


def _float_0d(a):
    """Whether ``a`` is a 0-d float array of at most 64 bits (a ``QParams``' scale):
    ``float(a)`` is then its exact value, which the kernel rounds as a scalar's."""
    return type(a) is np.ndarray and a.ndim == 0 and a.dtype.kind == "f" \
        and a.dtype.itemsize <= 8


def _int_0d(a):
    """Whether ``a`` is a 0-d integer array (a ``QParams``' zero point)."""
    return type(a) is np.ndarray and a.ndim == 0 and a.dtype.kind in "iu"


def static_per_tensor(x, dtype, scheme, granularity, scale, zero_point, narrow_range,
                      nan_policy, backend):
    """``quantize`` with one given scale and zero point, both scalars or 0-d arrays (as
    ``choose_qparams`` returns them), of an input whose plan is cached and has a
    ``tensor_call`` (per tensor, native float32 C-contiguous, on the CPU), once parallel
    regions need no lock: Python checks only the plan and the zero point (integers); the
    kernel rounds and checks the scale in the default floating-point environment, and
    runs the codes.  None where this does not apply or an argument is bad: the general
    path then runs (and raises, or caches the plan)."""
    if type(scale) not in SCALAR_SCALES and not _float_0d(scale):
        return None
    plan = _host_plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    call = plan.tensor_call if plan is not None else None
    if call is None or not (call.nchunks == 1 or threads.regions_unlocked()):
        return None  # (serial: no region to lock)
    zero = scalar_zero(plan, zero_point)
    if zero is None:
        return None
    data, flags, bits = call(x, scale, zero)
    if flags:
        if flags & BAD_SCALE:  # (the general path raises)
            return None
        check_nan(flags & NAN, nan_policy)
    no_zero_point = zero_point is None and plan.qmin < 0  # (signed codes: symmetric)
    return checked_qtensor(data, dtype, scale_array(bits),
                           None if no_zero_point else zero_array(plan.code_dtype, zero),
                           plan.shape, plan.granularity)


def scalar_zero(plan, zero_point):
    """The given zero point as an int (0 when None), or None where it is not a scalar
    or 0-d integer within the codes' range (the general path then runs, and raises)."""
    if zero_point is None:
        return 0
    if type(zero_point) in SCALAR_ZEROS or _int_0d(zero_point):
        zero = int(zero_point)
        return zero if plan.qmin <= zero <= plan.qmax else None
    return None


def static_prepared(x, dtype, scheme, granularity, scale, zero_point, narrow_range,
                    nan_policy, backend, fake=False):
    """``quantize`` (``fake``: ``fake_quantize``) with given parameters of an input whose
    plan is cached and ready (native float32 C-contiguous on the CPU, at most 3 blocked
    dimensions), by the kernels' prepared call (``static_calls``: the general path's
    kernels on the same view): for several groups (``PerChannel``, ``PerGroup``,
    ``PerBlock``) a native float32 C-contiguous ``scale`` of the parameter shape and an
    integer ``zero_point`` of that shape or None, as ``choose_qparams`` returns them;
    for fake quantization per tensor also scalars (as ``static_per_tensor`` takes them).
    The parameters are checked as ``check_static_params`` checks them.  None where this
    does not apply or an argument is bad: the general path then runs (and raises, or
    caches the plan)."""
    arrays = type(scale) is np.ndarray and scale.ndim > 0
    if not (arrays or fake and (type(scale) in SCALAR_SCALES or _float_0d(scale))):
        return None
    plan = _host_plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    if plan is None:
        return None
    calls = plan.static_calls
    if calls is None:  # (two threads may both make them: the same calls)
        calls = plan.static_calls = _static_calls(plan)
    call = calls and calls[1 if fake else 0]
    if not call:
        return None
    given = (_given_arrays if arrays else _given_scalars)(plan, call.grid, scale, zero_point)
    if given is None:
        return None
    scale3, zero3, zero_free, zero = given
    data, _, _, flags = call.call(x, scale3, zero3, zero_free)
    if flags:
        check_nan(flags & NAN, plan.nan_policy)
    if fake:
        return data
    return checked_qtensor(data, plan.dtype, scale3.reshape(plan.param_shape), zero,
                           plan.shape, plan.granularity)


def _given_arrays(plan, grid, scale, zero_point):
    """``(scale3, zero3, zero_free, zero)`` of given parameter arrays (see
    ``static_prepared``): the scale and zero point on the view's ``grid`` (float32, new
    arrays), whether every zero point is 0, the zero point a QTensor holds; or None."""
    shape = plan.param_shape
    if not (scale.shape == shape and scale.dtype == np.float32 and scale.dtype.isnative
            and scale.flags.c_contiguous):
        return None
    if zero_point is not None and not (type(zero_point) is np.ndarray
                                       and zero_point.shape == shape
                                       and zero_point.dtype.kind in "iu"):
        return None
    if not ((scale > 0) & (scale < np.inf)).all() or (zero_point is not None and (
            zero_point.min() < plan.qmin or zero_point.max() > plan.qmax)):
        return None  # (the general path raises)
    if zero_point is None:
        return (scale.reshape(grid).copy(), np.zeros(grid, np.float32), True,
                None if plan.qmin < 0 else np.zeros(shape, plan.code_dtype))
    return (scale.reshape(grid).copy(), zero_point.astype(np.float32).reshape(grid),
            not zero_point.any(), zero_point.astype(plan.code_dtype))


def _given_scalars(plan, grid, scale, zero_point):
    """``_given_arrays`` of a per-tensor scale and zero point, scalars or 0-d arrays."""
    s = _nearest_float32(scale) if plan.param_shape == () else None
    if s is None:
        return None
    zero = scalar_zero(plan, zero_point)
    if zero is None:
        return None
    scale3, zero3 = np.empty(grid, np.float32), np.empty(grid, np.float32)
    scale3[...], zero3[...] = s, zero  # (exact: a float32, and an integer under 2**16)
    return scale3, zero3, zero == 0, None


FLOAT32_NORMAL, FLOAT32_MAX = 2.0 ** -126, float(np.finfo(np.float32).max)


def _nearest_float32(scale):
    """The float32 nearest the float ``scale`` (ties to even), whatever the caller's
    rounding mode: NumPy's conversion rounds in the current mode, so its result is
    compared with its neighbour on the other side of ``scale`` in float64 arithmetic
    that is exact in any mode (differences of floats within a factor 2 of each other).
    None unless it is a normal positive finite float32 (the general path converts and
    checks the others; a flush-to-zero mode would flush subnormals)."""
    s = float(scale)  # (exact: float16, float32 or float64)
    if not FLOAT32_NORMAL <= s < FLOAT32_MAX:  # (NaN too; no overflow warning)
        return None
    f = np.float32(s)
    if not (f >= FLOAT32_NORMAL and f < np.inf):  # (flush-to-zero, or a mode's overflow)
        return None
    below = s - float(f)
    if below == 0:
        return f
    other = np.nextafter(f, np.float32(np.inf) if below > 0 else np.float32(0))
    if not other < np.inf:
        return None
    a, b = abs(below), abs(float(other) - s)
    if a != b:
        return f if a < b else other
    return f if not f.view(np.uint32) & 1 else other


def _static_calls(plan):
    """``[codes, fake values]``: the prepared calls of quantization with given parameters
    for ``plan``, as the general path lays them out (``fused=False``, neither symmetric
    nor ignoring: its kernels' flags); codes for several groups (one: ``tensor_call``),
    fake values unless the general path cuts the view for the threads
    (``cut_for_threads``); or False where there are none."""
    kernels = plan.kernels
    if not (plan.ready and plan.on_host and not plan.lead and plan.size
            and hasattr(kernels, "RowsCall")):
        return False

    def planned(code_dtype, bits):
        return kernels.RowsCall.planned(plan.shape, code_dtype, *plan.view, bits, plan.qmin,
                                        plan.qmax, False, False, fused=False)
    return [planned(plan.code_dtype, plan.bits) if math.prod(plan.param_shape) > 1 else None,
            None if kernels.cut_for_threads(*plan.view) else planned(np.float32, 8)]


def prepare_calls(plan):
    """The kernels' prepared calls of a ``one_call`` plan: ``dynamic_call`` for
    several groups (one group has its per-tensor one already), and ``fake_call``."""
    one_group = plan.dynamic_call is not None
    symmetric, ignore = plan.scheme == "symmetric", plan.nan_policy == "ignore"

    def prepared(code_dtype, bits):
        if one_group:
            return plan.kernels.DynamicTensorCall(plan.shape, code_dtype, plan.qmin,
                                                  plan.qmax, bits, symmetric, ignore)
        return plan.kernels.RowsCall.planned(
            plan.shape, code_dtype, *plan.view, bits, plan.qmin, plan.qmax, symmetric,
            ignore)
    if not one_group:
        plan.dynamic_call = prepared(plan.code_dtype, plan.bits)
    plan.fake_call = prepared(np.float32, 8)  # (float32 values; codes of 8 bits)


def dynamic_prepared(x, dtype, scheme, granularity, narrow_range, nan_policy, backend,
                     fake=False):
    """Dynamic ``quantize`` (``fake``: ``fake_quantize``) of an input whose plan is cached
    and has the prepared call (``dynamic_call``: per tensor or one parameter group,
    ``DynamicTensorCall``; groups of whole rows or block rows, ``RowsCall``;
    ``fake_call``): the kernels' call, its NaN/inf flags checked as the general path
    checks them.  None where there is none: the general path then runs (and raises, or
    caches the plan)."""
    plan = _host_plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    call = None if plan is None else plan.fake_call if fake else plan.dynamic_call
    if call is None:
        return None
    data, scale3, zero3, flags = call.call(x)
    if flags:
        check_range(flags & NAN, flags & INF, plan.nan_policy)
    if fake:
        return data
    zero = None if call.symmetric and plan.qmin < 0 else \
        zero3.reshape(plan.param_shape).astype(plan.code_dtype)
    return checked_qtensor(data, plan.dtype, scale3.reshape(plan.param_shape), zero,
                           plan.shape, plan.granularity)


# Read-only 0-d arrays of recent scales (by the bits of the float32) and zero points (by
# code dtype and value), copied for each QTensor: a copy takes a third of the time of
# making the array from an int (``np.array(bits, np.uint32).view(np.float32)``).
MAX_PARAMS = 4096
_scales, _zeros = {}, {}


def scale_array(bits):
    """A new 0-d float32 array holding the float32 whose bits are ``bits`` (exact in any
    floating-point environment)."""
    template = _scales.get(bits)
    if template is None:
        template = np.array(bits, np.uint32).view(np.float32)
        template.flags.writeable = False
        _remember(_scales, bits, template)
    return template.copy()


def zero_array(code_dtype, zero):
    """A new 0-d array of ``code_dtype`` holding the integer ``zero`` (in its range)."""
    template = _zeros.get((code_dtype, zero))
    if template is None:
        template = np.array(zero, code_dtype)
        template.flags.writeable = False
        _remember(_zeros, (code_dtype, zero), template)
    return template.copy()


def _remember(cache, key, value):
    if len(cache) >= MAX_PARAMS:  # (another thread may clear it meanwhile: a later miss)
        cache.clear()
    cache[key] = value
