"""``fq.quantize``, ``fq.dequantize``, ``fq.fake_quantize``, ``fq.choose_qparams``.

The formulas are stated in ``fastq.ops.linear``.  ``backend="auto"`` runs on the GPU
when ``x`` (``qt.data``) is a CUDA array; the results of device input stay on the
device (a QTensor's data, scale and zero point, QParams and float outputs are device
arrays: ``fq.to_host`` brings them back).  Host input with ``backend="cuda"`` is copied
in and its results copied back: host arrays, as on the CPU.
"""
import math

import numpy as np

from ..backend import select
from ..core import checks
from ..core.codes import dtype_info
from ..core.granularity import as_granularity
from ..runtime import device
from ..runtime.fpenv import ieee_default
from . import plans
from .blocks import codec, is_block_format
from .linear import (check_static_params, float32_input, grid3, lead_dims, packed_codes,
                     qparams_from_range, to_float32, view3)
from .qtensor import QParams, QTensor, to_host

SCHEMES = ("asymmetric", "symmetric")
NAN_POLICIES = ("raise", "ignore")
# Inputs that need converting to float32 go in pieces of about CONVERT_PIECE elements
# (see QuantizeCall.pieces): 4 MB of float32 at a time, never a copy of it all.
CONVERT_PIECE = 1 << 20
# Dynamic quantization by rows (range, parameters and codes in one pass) takes rows of at
# most this many elements: 256 KB of float32, well inside a core's L2.
ROW_IN_CACHE = 1 << 16
# ... and block rows (a group per column, PerGroup along the first axis) of at most this
# many: 4 MB of float32, in the last-level cache when its codes are written.
BLOCK_ROW_IN_CACHE = 1 << 20
# Dynamic per-tensor quantization of a ready input (native float32, C-contiguous), and
# PerChannel on the last axis, run their range pass, parameters and quantize pass in one
# kernel call: Python between the passes would run with caches the first pass emptied.
# Test hook: True runs every dynamic quantization as a range pass, then a quantize pass
# (the reference the one-call kernels are compared with).
_force_two_passes = False


def quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None, zero_point=None,
             narrow_range=False, nan_policy="raise", backend="auto", **format_options):
    """Quantize ``x`` to ``dtype``; returns a :class:`QTensor`.

    Linear (integer ``dtype``): dynamic when ``scale`` is None (range from the data,
    min/max observer), static otherwise (``zero_point`` defaults to 0, as ONNX
    QuantizeLinear); see ``fastq.ops.linear`` for the formulas.  A block format
    (``fastq.ops.blocks``) takes its own ``format_options`` (``block_size=`` for NF4).
    """
    if is_block_format(dtype):
        return codec(dtype).quantize(x, dtype, scheme=scheme, granularity=granularity,
                                     scale=scale, zero_point=zero_point,
                                     narrow_range=narrow_range, nan_policy=nan_policy,
                                     backend=backend, **format_options)
    if format_options:
        raise TypeError(f"quantize() got an unexpected keyword argument "
                        f"{next(iter(format_options))!r} for dtype {dtype!r}")
    if scale is not None:  # (no floating-point arithmetic here before the kernel's own)
        qt = plans.static_per_tensor(x, dtype, scheme, granularity, scale, zero_point,
                                      narrow_range, nan_policy, backend)
        if qt is None:
            qt = plans.static_prepared(x, dtype, scheme, granularity, scale, zero_point,
                                       narrow_range, nan_policy, backend)
        if qt is not None:
            return qt
    elif zero_point is None and not _force_two_passes:  # (as ``in_one_call`` says)
        qt = plans.dynamic_prepared(x, dtype, scheme, granularity, narrow_range, nan_policy,
                                    backend)
        if qt is not None:
            return qt
    return _quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range,
                     nan_policy, backend)


@ieee_default
def _quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range, nan_policy,
              backend):
    job = QuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    if scale is None and zero_point is None and job.in_one_call():
        data = job.empty_codes()
        scale, zero_point = job.quantize_in_one_call(data, fake=False)
        return job.result(QTensor(data, dtype, scale, zero_point, job.plan.shape,
                                  job.plan.granularity))
    nan_free = job.nan_free(scale)
    scale, zero_point = job.qparams(scale, zero_point)  # (its temporaries freed first)
    data = job.empty_codes()
    nan = False
    for x3, blocks3, rows, part in job.pieces():
        plan = job.plan
        out = job.piece_of(data, part, x3.shape, packed=plan.kernel_bits < 8)
        nan |= plan.kernels.quantize(x3, blocks3, *job.grids(scale, zero_point, x3, blocks3,
                                                             rows), plan.qmin, plan.qmax,
                                     plan.kernel_bits, out, nan_free=nan_free)
    plans.check_nan(nan, job.plan.nan_policy)
    return job.result(QTensor(job.finish_codes(data), dtype, scale, zero_point, job.plan.shape,
                              job.plan.granularity))


def fake_quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None,
                  zero_point=None, narrow_range=False, nan_policy="raise", backend="auto"):
    """``dequantize(quantize(x, ...))`` fused in one pass: float32 of ``x``'s shape."""
    if scale is None and zero_point is None and not _force_two_passes:
        out = plans.dynamic_prepared(x, dtype, scheme, granularity, narrow_range, nan_policy,
                                     backend, fake=True)
    else:  # (given parameters: their prepared call, or None)
        out = plans.static_prepared(x, dtype, scheme, granularity, scale, zero_point,
                                    narrow_range, nan_policy, backend, fake=True)
    if out is not None:
        return out
    return _fake_quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range,
                          nan_policy, backend)


@ieee_default
def _fake_quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range, nan_policy,
                   backend):
    job = QuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    if scale is None and zero_point is None and job.in_one_call():
        out = job.empty(np.float32)
        job.quantize_in_one_call(out, fake=True)
        return job.result(out)
    nan_free = job.nan_free(scale)
    scale, zero_point = job.qparams(scale, zero_point)
    out = job.empty(np.float32)
    nan = False
    for x3, blocks3, rows, part in job.pieces():
        plan = job.plan
        nan |= plan.kernels.fake_quantize(x3, blocks3,
                                          *job.grids(scale, zero_point, x3, blocks3, rows),
                                          plan.qmin, plan.qmax,
                                          job.piece_of(out, part, x3.shape), nan_free=nan_free)
    plans.check_nan(nan, job.plan.nan_policy)
    return job.result(out)


@ieee_default
def choose_qparams(x, dtype, scheme="asymmetric", granularity="tensor", observer="minmax",
                   narrow_range=False, nan_policy="raise", backend="auto"):
    """Scale and zero point that ``quantize`` would compute, as :class:`QParams`."""
    if observer != "minmax":
        raise ValueError(f"observer must be 'minmax' here, got {observer!r} (moving_average, "
                         "percentile, entropy and mse come with calibration)")
    job = QuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    return job.result(QParams(*job.qparams(None, None)))


def dequantize(qt, backend="auto"):  # (QTensor.dequantize sets the FP environment)
    """``(codes - zero_point) * scale`` in float32, in the original shape (a block
    format: its own decoding); the same as ``qt.dequantize()``."""
    if not isinstance(qt, QTensor):
        raise TypeError(f"qt must be a fastq.QTensor, got {type(qt).__name__}")
    return qt.dequantize(backend)


class QuantizeCall:
    """One validated quantization call: its plan (what the arguments fix, cached) and
    the float32 input in its canonical view, or the input to convert in pieces."""

    def __init__(self, x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
        key = plans.plan_key(x, dtype, scheme, granularity, narrow_range, nan_policy,
                             backend)
        plan = plans.cached(key)
        self.plan, self.source = plan, None  # (source: an input taken in pieces)
        if plan is None:
            plan, x = self._plan(x, dtype, scheme, granularity, narrow_range, nan_policy,
                                 backend)
            self.plan = plan
            # (a repeated dynamic call of a ready host input: the kernels' prepared call)
            plan.one_call = plan.ready and not plan.lead and self.in_one_call()
            if plan.one_call:
                plans.prepare_calls(plan)
            if key is not None and not plan.backend.on_gpu:
                plans.remember(key, plan)
        if (not plan.ready and x.ndim) or plan.lead:
            self.source = x  # converted (or, past 3 blocked dimensions, taken) in pieces
            return
        if not plan.ready:  # 0-d
            x = x.astype(np.float32)
        self.x3 = x.reshape(plan.view[0])

    @staticmethod
    def _plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
        """What the arguments fix, validated (everything but the data), and ``x`` as an
        array: on the CPU any float ndarray; for the GPU float32 on the device."""
        backend = select(backend, x)
        kernels = backend.kernels("quant")
        qmin, qmax, bits, code_dtype = dtype_info(dtype)
        scheme = checks.check_choice(scheme, "scheme", SCHEMES)
        nan_policy = checks.check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        narrow_range = checks.check_bool(narrow_range, "narrow_range")
        qmin = -qmax if narrow_range and qmin < 0 else qmin
        granularity = as_granularity(granularity)
        on_host, ready = True, True
        if backend.on_gpu:  # float32, C-contiguous, on the device (host x: copied in)
            x, on_host = float32_input(x)
        else:
            x = checks.as_float_array(x)
            ready = x.dtype == np.float32 and x.dtype.isnative and x.flags.c_contiguous
        shape = x.shape
        blocks = granularity.blocks(shape)
        param_shape = granularity.param_shape(shape)
        lead = lead_dims(shape, blocks)
        if lead and backend.on_gpu:
            raise ValueError(f"granularity blocks {blocks} on shape {shape} need more than 3 "
                             "blocked dimensions, which the GPU backend does not take: "
                             "quantize on the CPU")
        tensor_call = None  # (static per tensor: the kernel call laid out once)
        dynamic_call = None  # (dynamic, one parameter group: the kernels' call laid out once)
        if ready and hasattr(kernels, "TensorCall"):
            if param_shape == ():
                tensor_call = kernels.TensorCall(shape, code_dtype, qmin, qmax, bits)
            # (any granularity of one group, as PerChannel(0) of a (1, n) input, runs the
            # per-tensor kernels on the general path too)
            if x.size and not lead and math.prod(param_shape) == 1:
                dynamic_call = kernels.DynamicTensorCall(
                    shape, code_dtype, qmin, qmax, bits, scheme == "symmetric",
                    nan_policy == "ignore")
        return plans.QuantizePlan(
            backend=backend, kernels=kernels, dtype=dtype, qmin=qmin, qmax=qmax, bits=bits,
            code_dtype=code_dtype, scheme=scheme, nan_policy=nan_policy,
            granularity=granularity, on_host=on_host, ready=ready, shape=shape,
            size=math.prod(shape), blocks=blocks, param_shape=param_shape,
            tensor_call=tensor_call, dynamic_call=dynamic_call, fake_call=None, one_call=False,
            grid=tuple(-(-n // max(b, 1)) for n, b in zip(shape, blocks)),
            view=view3(shape[lead:], blocks[lead:]), lead=lead,
            kernel_bits=8 if lead and bits < 8 else bits), x

    def pieces(self):
        """``(x3, blocks3, rows, part)`` to run the kernels on: the whole input in its
        canonical view (``part`` None); for an input that needs converting (another
        dtype or byte order, not C-contiguous) runs of rows ``part = (i, j)`` along axis
        0, each converted to float32 in turn (about ``CONVERT_PIECE`` elements: no
        temporary the size of a big input), aligned to the blocks along axis 0 and to
        whole bytes of packed codes, ``rows`` slicing axis 0 of the full-rank parameter
        grid; past 3 blocked dimensions, each index of the ``lead`` first axes
        (``part`` that index, ``rows`` its cell of the grid's first axes)."""
        plan = self.plan
        if not plan.size:
            return
        if plan.lead:
            for index in np.ndindex(*plan.shape[:plan.lead]):
                xc = self.source[index]
                if not (xc.dtype == np.float32 and xc.dtype.isnative
                        and xc.flags.c_contiguous):
                    xc = to_float32(xc)
                rows = tuple(i // b for i, b in zip(index, plan.blocks))
                yield xc.reshape(plan.view[0]), plan.view[1], rows, index
            return
        if self.source is None:
            yield self.x3, plan.view[1], ..., None
            return
        n0, b0 = plan.shape[0], plan.blocks[0]
        whole = b0 >= n0  # one parameter block along axis 0: any run of rows will do
        unit = 8 if whole else math.lcm(b0, 8)
        step = max(unit, CONVERT_PIECE // (plan.size // n0) // unit * unit)
        for i in range(0, n0, step):
            j = min(i + step, n0)
            xc = to_float32(self.source[i:j])
            view = view3(xc.shape, (j - i if whole else b0,) + plan.blocks[1:])
            rows = slice(0, 1) if whole else slice(i // b0, -(-j // b0))
            yield xc.reshape(view[0]), view[1], rows, (i, j)

    def piece_of(self, out, part, shape3, packed=False):
        """The part of the output ``out`` a piece writes: ``x``'s shape (codes, values)
        viewed as ``shape3``, or the packed bytes of its codes."""
        plan = self.plan
        if part is None:
            return out if packed else out.reshape(shape3)
        if plan.lead:  # (codes unpacked: packed once all are there, by finish_codes)
            return out[part].reshape(shape3)
        i, j = part
        row = plan.size // plan.shape[0]
        if packed:  # pieces start on byte boundaries
            return out[i * row * plan.bits // 8:-(-j * row * plan.bits // 8)]
        return out[i:j].reshape(shape3)

    def empty_codes(self):
        """The codes' array: x's shape, or for 4/2 bits the packed bytes (1-D), packed
        by the quantize pass itself (past 3 blocked dimensions: unpacked, see
        ``finish_codes``)."""
        plan = self.plan
        if plan.kernel_bits < 8:
            return plan.backend.empty(-(-plan.size * plan.bits // 8), np.uint8)
        return self.empty(plan.code_dtype)

    def finish_codes(self, codes):
        """The codes as a QTensor stores them: packed for 4/2 bits."""
        plan = self.plan
        return packed_codes(codes, plan.bits) if plan.kernel_bits != plan.bits else codes

    def empty(self, dtype):
        """An output array of x's shape where the work runs (host or device)."""
        return self.plan.backend.empty(self.plan.shape, dtype)

    def result(self, r):
        """GPU work on device input stays there (scale and zero point included); GPU work
        on host input comes back to the host."""
        if not self.plan.backend.on_gpu:
            return r
        if self.plan.on_host:
            return to_host(r)
        if isinstance(r, (QTensor, QParams)):
            zp = r.zero_point
            scale = device.to_device(np.asarray(r.scale))
            zp = None if zp is None else device.to_device(np.asarray(zp))
            if isinstance(r, QParams):
                return QParams(scale, zp)
            return QTensor(r.data, r.dtype, scale, zp, r.shape, r.granularity)
        return r

    def grids(self, scale, zero_point, x3, blocks3, rows):
        """Scale and zero point (float32) on the grid of the piece ``x3``."""
        grid = grid3(x3.shape, blocks3)
        scale3 = np.array(scale, np.float32).reshape(self.plan.grid)[rows]
        zero3 = np.zeros(self.plan.grid, np.float32)
        if zero_point is not None:
            zero3[...] = np.reshape(zero_point, self.plan.grid)
        return scale3.reshape(grid), zero3[rows].reshape(grid)  # (rows: C-contiguous)

    def qparams(self, scale, zero_point):
        if scale is None:
            if zero_point is not None:
                raise ValueError("zero_point is only used with a given scale")
            rmin, rmax = self.value_range()
            return qparams_from_range(rmin, rmax, self.plan.scheme, self.plan.qmin, self.plan.qmax,
                                      self.plan.code_dtype)
        return check_static_params(scale, zero_point, self.plan.dtype, self.plan.shape,
                                   self.plan.granularity, self.plan.qmin, self.plan.qmax)

    def nan_free(self, scale):
        """Whether x is known to hold no NaN once ``qparams(scale, ...)`` has run: its
        range pass raises on one unless NaN is ignored (so the quantize pass need not
        look for them)."""
        return scale is None and self.plan.nan_policy == "raise"

    def in_one_call(self):
        """Whether dynamic quantization can run in one call of a backend that has it
        (``quantize_dynamic``): per tensor, or each row of the view one parameter group
        (``PerChannel`` on the first axis, ``PerGroup`` on the last, ...) or each column
        of a block row (``PerGroup`` along the first axis), with rows (block rows) enough
        to share out and small enough to stay in cache while they are coded."""
        (P, K, Q), (bp, bk, bq) = self.plan.view
        if (_force_two_passes or not self.plan.size or self.plan.lead or bp != 1
                or not hasattr(self.plan.kernels, "quantize_dynamic")):
            return False
        if (bk, bq) == (1, Q):  # a group per row
            if P * K > 1:
                return Q <= ROW_IN_CACHE
            return self.source is None  # (pieces: a range each)
        if bq == 1 and P == 1 and bk == K:  # a group per column (PerChannel, last axis)
            return self.source is None  # (pieces: ranges each)
        # a group per column of each block row (PerGroup along the first axis)
        return bq == 1 and P * K > bk and bk * Q <= BLOCK_ROW_IN_CACHE

    def quantize_in_one_call(self, out, fake):
        """Range, parameters and codes (or fake values) into ``out`` in one call;
        returns the scale and zero point, as ``qparams`` would have."""
        symmetric = self.plan.scheme == "symmetric"
        scale, zero = np.empty(self.plan.grid, np.float32), np.empty(self.plan.grid, np.float32)
        has_nan = has_inf = False
        for x3, blocks3, rows, part in self.pieces():
            g3 = grid3(x3.shape, blocks3)  # (rows of C-contiguous arrays: views)
            nan, inf = self.plan.kernels.quantize_dynamic(
                x3, blocks3, scale[rows].reshape(g3), zero[rows].reshape(g3), self.plan.qmin,
                self.plan.qmax, self.plan.bits,
                self.piece_of(out, part, x3.shape, packed=self.plan.bits < 8 and not fake),
                symmetric, self.plan.nan_policy == "ignore", fake)
            has_nan, has_inf = has_nan or nan, has_inf or inf
        plans.check_range(has_nan, has_inf, self.plan.nan_policy)  # (raises unless ignored)
        scale = scale.reshape(self.plan.param_shape)
        if symmetric and self.plan.qmin < 0:
            return scale, None
        return scale, zero.reshape(self.plan.param_shape).astype(self.plan.code_dtype)

    def value_range(self):
        rmin, rmax, has_nan, has_inf = self.ranges_and_flags()
        plans.check_range(has_nan, has_inf, self.plan.nan_policy)  # (raises unless ignored)
        return rmin, rmax

    def ranges_and_flags(self):
        """``(rmin, rmax, has_nan, has_inf)``: the ranges of the parameter shape (each
        holding 0; NaN and inf left out) and whether x holds a NaN or an inf, without
        raising (``value_range`` raises as the NaN policy says)."""
        if not self.plan.size:
            return (np.zeros(self.plan.param_shape, np.float32),) * 2 + (False, False)
        rmin = np.zeros(self.plan.grid, np.float32)
        rmax = np.zeros(self.plan.grid, np.float32)
        has_nan = has_inf = False
        for x3, blocks3, rows, _ in self.pieces():
            grid = grid3(x3.shape, blocks3)
            lo, hi = np.zeros(grid, np.float32), np.zeros(grid, np.float32)
            nan, inf = self.plan.kernels.minmax(x3, blocks3, lo, hi)
            has_nan, has_inf = has_nan or nan, has_inf or inf
            part = rmin[rows].shape  # (each range already holds 0)
            rmin[rows] = np.minimum(rmin[rows], lo.reshape(part))
            rmax[rows] = np.maximum(rmax[rows], hi.reshape(part))
        return (rmin.reshape(self.plan.param_shape), rmax.reshape(self.plan.param_shape),
                has_nan, has_inf)
