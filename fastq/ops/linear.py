"""Linear quantization's array-level rules: parameters from ranges, static parameters
checked, the canonical view and grid, codes packed, and dequantization.

Numeric conventions (bit-exact with ONNX's reference QuantizeLinear/DequantizeLinear and,
for uint8 per-tensor, DynamicQuantizeLinear):

* ``q = clip(rint(x / scale) + zero_point, qmin, qmax)``: true float32 division,
  round half to even; ``x_hat = (q - zero_point) * scale`` in float32.
* asymmetric: range ``[min(min x, 0), max(max x, 0)]``, ``scale = (rmax - rmin) /
  (qmax - qmin)`` (``rmax / n - rmin / n`` when that overflows), ``zero_point =
  clip(rint(qmin - rmin / scale))``; symmetric: ``scale = max|x| / ((qmax - qmin) // 2)``,
  zero point 0 (signed, stored as None) or the midpoint (unsigned).  float32 throughout;
  a zero range gives scale 1; computed scales are floored at the smallest normal float32.
"""
import math

import numpy as np

from ..backend import CPU, where
from ..core.codes import INT_DTYPES, dtype_info
from ..core.granularity import Granularity, canonical_view
from ..runtime import device
from ..runtime.pool import POOLED_FROM
from .casting import cast


def qparams_from_range(rmin, rmax, scheme, qmin, qmax, code_dtype):
    """float32 scale and zero point (None for signed symmetric) of the ranges
    ``[rmin, rmax]`` (arrays of the parameter shape), by the formulas of the module
    docstring: computed by the kernels' own ``scale_zero``, so dynamic quantization in
    one kernel call and in separate passes give the same bits."""
    rmin, rmax = np.array(rmin, np.float32), np.array(rmax, np.float32)  # (C order, 0-d kept)
    scale, zero = np.empty(rmin.shape, np.float32), np.empty(rmin.shape, np.float32)
    symmetric = scheme == "symmetric"
    CPU.kernels("linear.params").range_params(
        rmin.reshape(-1), rmax.reshape(-1), symmetric, np.float32(qmin), np.float32(qmax),
        scale.reshape(-1), zero.reshape(-1))
    if symmetric and qmin < 0:
        return scale, None
    return scale, zero.astype(code_dtype)


def check_static_params(scale, zero_point, dtype, shape, granularity, qmin, qmax):
    """Validate a given scale / zero point against the granularity's parameter shape;
    returns them as float32 and the code dtype (zero point None: 0, or None when signed)."""
    param_shape = granularity.param_shape(shape)
    code_dtype = dtype_info(dtype)[3]
    try:
        with np.errstate(over="ignore"):  # (a scale past float32's range raises below)
            scale = np.array(scale, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError("scale must be a float or an array of floats") from None
    if scale.shape != param_shape and not (param_shape == () and scale.size == 1):
        raise ValueError(f"scale must have shape {param_shape} for {granularity!r}, "
                         f"got {scale.shape}")
    scale = scale.reshape(param_shape)
    if not ((scale > 0) & (scale < np.inf)).all():  # (NaN fails both)
        raise ValueError("scale must be finite and > 0")
    if zero_point is None:
        return scale, (None if qmin < 0 else np.zeros(param_shape, code_dtype))
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iub" and not (zp.dtype.kind == "f" and (zp == np.rint(zp)).all()):
        raise TypeError(f"zero_point must be an integer array, got dtype {zp.dtype}")
    if zp.shape != param_shape and not (param_shape == () and zp.size == 1):
        raise ValueError(f"zero_point must have shape {param_shape}, got {zp.shape}")
    if zp.size and (zp.min() < qmin or zp.max() > qmax):
        raise ValueError(f"zero_point must lie in [{qmin}, {qmax}] for {dtype}")
    return scale, zp.reshape(param_shape).astype(code_dtype)


def packed_codes(codes, bits):
    """Pack unpacked codes C-order, first element in the low bits (where codes live)."""
    backend = where(codes)
    flat = codes.reshape(codes.size)
    out = backend.empty(math.ceil(flat.size * bits / 8), np.uint8)
    if flat.size:
        backend.kernels("pack").pack_into(flat, bits, out)
    return out


def unpacked_codes(data, bits, signed, size, code_dtype):
    """``size`` codes of ``bits`` unpacked from the bytes ``data`` (where they live)."""
    backend = where(data)
    out = backend.empty(size, code_dtype)
    backend.kernels("pack").unpack_into(data, bits, signed, out)
    return out


def view3(shape, blocks):
    """The canonical ``(P, K, Q)`` view and its blocks (``canonical_view``); None past
    3 blocked dimensions (see ``lead_dims``)."""
    return canonical_view(shape, blocks)


def lead_dims(shape, blocks):
    """How many leading dimensions must be taken an index at a time for the rest to
    reduce to the canonical 3-D view: 0 for every granularity but a ``PerBlock`` that
    alternates blocked and whole dimensions more than 3 times."""
    lead = 0
    while canonical_view(shape[lead:], blocks[lead:]) is None:
        lead += 1
    return lead


def grid3(shape3, blocks3):
    """The parameter grid of a view: ``ceil(d / b)`` per dimension."""
    return tuple(-(-d // b) for d, b in zip(shape3, blocks3))


def to_float32(a):
    """A native float32 C-contiguous copy: float16/bfloat16 exactly, float64 rounded once
    (half to even), any byte order or layout (the cast kernels, in parallel)."""
    return cast(a, "float32")


def dequantize_codes(codes, scale, zero_point, shape, granularity, backend, out):
    """``(codes - zero_point) * scale`` in float32 into ``out`` (``shape``), with the
    kernels of ``backend``: ``codes`` unpacked, ``scale``/``zero_point`` host arrays of
    the parameter shape (``zero_point`` None: 0)."""
    if not out.size:
        return out
    blocks, lead, shape3, blocks3, grid, g3 = dequantize_layout(shape, granularity)
    if not (backend.on_gpu or codes.flags.c_contiguous):
        codes = np.ascontiguousarray(codes)
    scale = np.ascontiguousarray(scale, np.float32)
    if zero_point is None:
        zero = np.zeros(grid, np.float32)
    else:
        zero = np.asarray(zero_point, np.float32)
        if zero.shape != scale.shape:
            zero = np.broadcast_to(zero, scale.shape)
        zero = np.ascontiguousarray(zero).reshape(grid)
    scale = scale.reshape(grid)
    kernels = backend.kernels("quant")
    if not lead:
        kernels.dequantize(codes.reshape(shape3), blocks3, scale.reshape(g3),
                           zero.reshape(g3), out.reshape(shape3))
        return out
    for index in np.ndindex(*shape[:lead]):  # (past 3 blocked dimensions: an index at a time)
        cell = tuple(i // b for i, b in zip(index, blocks))
        kernels.dequantize(codes[index].reshape(shape3), blocks3,
                           np.ascontiguousarray(scale[cell]).reshape(g3),
                           np.ascontiguousarray(zero[cell]).reshape(g3),
                           out[index].reshape(shape3))
    return out


# ``ndarray.flags.num`` bits a plan depends on: C_CONTIGUOUS (the layout), ALIGNED and
# WRITEABLE (the types Numba compiles a kernel for: the compiled code a plan calls
# directly is the one of those types).  OWNDATA and the rest leave a plan unchanged.
KEY_FLAGS = 0x1 | 0x100 | 0x400
MAX_PLANS = 256
# the key of a repeated dequantization -> (call, view, grid of the view, zeros), or
# False: that key takes the general path
_dequantize_plans = {}


def dequantize_planned(codes, dtype, scale, zero_point, shape, granularity):
    """The float32 values of a repeated host dequantization (what ``dequantize_codes``
    computes, the same kernels on the same view) and its ``PreparedDequantize``, or
    ``(None, None)`` where the general path must run.  A plan, cached by every fact that
    fixes it (the arrays' shapes, dtypes and flags, the QTensor's dtype, shape and
    granularity), holds the checked view and the kernels' prepared call
    (``DequantizeCall``); the QTensor keeps the ``PreparedDequantize`` for its later
    calls."""
    if type(scale) is not np.ndarray or (zero_point is not None
                                         and type(zero_point) is not np.ndarray):
        return None, None
    key = (codes.shape, codes.dtype, codes.flags.num & KEY_FLAGS, dtype, shape, granularity,
           scale.shape, scale.dtype, scale.flags.num & KEY_FLAGS,
           None if zero_point is None else (zero_point.shape, zero_point.dtype))
    try:
        plan = _dequantize_plans.get(key)
    except TypeError:  # (an unhashable part: the general path says what is wrong)
        return None, None
    if plan is None:
        plan = _dequantize_plan(codes, dtype, scale, zero_point, shape, granularity)
        if len(_dequantize_plans) >= MAX_PLANS:
            _dequantize_plans.clear()
        _dequantize_plans[key] = plan
    if not plan:
        return None, None
    prepared = PreparedDequantize(plan, codes, dtype, scale, zero_point, shape,
                                  granularity)
    return prepared.run(), prepared


class PreparedDequantize:
    """One QTensor's planned dequantization, kept by it for its later calls: the plan's
    call with the codes and scale already in the plan's view.  The QTensor calls
    ``run`` while its parts are the very objects this was made of (``data``, ``dtype``,
    ``scale``, ``zero_point``, ``shape``, ``granularity``, compared by identity: a part
    replaced, and the general path plans again); the views share
    the arrays' memory, so values changed in place are read.  A 0-d zero point is
    converted once and read again (``int``) on each call; a larger one is converted on
    each call."""
    __slots__ = ("data", "dtype", "scale", "zero_point", "shape", "granularity", "call",
                 "codes3", "scale3", "zero3", "zero_value", "grid3", "shape3", "pooled")

    def __init__(self, plan, codes, dtype, scale, zero_point, shape, granularity):
        self.data, self.dtype, self.scale, self.zero_point = codes, dtype, scale, zero_point
        self.granularity = granularity  # (with shape: the parts, see above)
        call, shape3, g3, zeros, pooled = plan
        self.call, self.shape, self.shape3, self.grid3, self.pooled = call, shape, shape3, \
            g3, pooled
        self.codes3, self.scale3 = codes.reshape(shape3), scale.reshape(g3)
        self.zero3, self.zero_value = zeros, None
        if zero_point is not None and zero_point.ndim == 0:
            self.zero_value = int(zero_point)
            self.zero3 = zero_point.astype(np.float32).reshape(g3)

    def run(self):
        """The float32 values (a new array of the QTensor's shape)."""
        out = CPU.empty(self.shape, np.float32) if self.pooled else \
            np.empty(self.shape, np.float32)
        zero3, zero_point = self.zero3, self.zero_point
        if zero_point is not None and (self.zero_value is None
                                       or int(zero_point) != self.zero_value):
            zero3 = zero_point.astype(np.float32).reshape(self.grid3)
        self.call(self.codes3, self.scale3, zero3, out.reshape(self.shape3))
        return out


def _dequantize_plan(codes, dtype, scale, zero_point, shape, granularity):
    """The plan of ``dequantize_planned`` for these arguments, or False: unpacked native
    C-contiguous integer codes of ``shape`` (at most 3 blocked dimensions), a native
    float32 C-contiguous scale of the parameter grid's size, a zero point of the
    scale's shape (or None)."""
    codes_info = INT_DTYPES.get(dtype) if isinstance(dtype, str) else None
    if (codes_info is None or codes_info.packed or not isinstance(granularity, Granularity)
            or codes.dtype.kind not in "iu" or not codes.dtype.isnative
            or not codes.flags.c_contiguous or codes.shape != shape
            or not codes.size or scale.dtype != np.float32
            or not scale.dtype.isnative or not scale.flags.c_contiguous
            or (zero_point is not None and (zero_point.shape != scale.shape
                                            or zero_point.dtype.kind not in "iub"))):
        return False
    try:
        blocks, lead, shape3, blocks3, grid, g3 = dequantize_layout(shape, granularity)
    except (ValueError, TypeError):
        return False
    if lead or scale.size != math.prod(grid):
        return False
    call = getattr(CPU.kernels("quant"), "DequantizeCall", None)
    if call is None:
        return False
    return (call(shape3, blocks3, codes.dtype.itemsize), shape3, g3, np.zeros(g3, np.float32),
            codes.size * 4 >= POOLED_FROM)


_layouts = {}  # (shape, granularity) -> dequantize_layout's answer, for repeated calls


def dequantize_layout(shape, granularity):
    """``(blocks, lead, shape3, blocks3, grid, grid3)`` of dequantizing ``shape`` by
    ``granularity``: its blocks, ``lead_dims``, canonical view, full-rank parameter grid
    and the view's grid; cached (256 layouts at most)."""
    key = (tuple(shape), granularity)
    layout = _layouts.get(key)
    if layout is None:
        blocks = granularity.blocks(shape)
        lead = lead_dims(shape, blocks)
        shape3, blocks3 = view3(shape[lead:], blocks[lead:])
        layout = (blocks, lead, shape3, blocks3,
                  tuple(-(-d // b) for d, b in zip(shape, blocks)), grid3(shape3, blocks3))
        if len(_layouts) >= 256:
            _layouts.clear()
        _layouts[key] = layout
    return layout


def float32_input(x, name="x"):
    """``(device float32 C-contiguous array, on_host)`` for quantization on the GPU.

    A host ``x`` is validated and converted as on the CPU (float16/bfloat16 exactly,
    float64 rounded once), then copied in; a device ``x`` of another float dtype is
    converted on the device by ``fq.cast``.
    """
    a, on_host = device.float_input(x, name)
    if on_host:
        if not (a.dtype == np.float32 and a.dtype.isnative):
            a = a.astype(np.float32)
        return device.to_device(a), True
    if a.dtype != np.float32:
        a = cast(a, "float32", backend="cuda")
    return a, False
