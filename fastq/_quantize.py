"""``fq.quantize``, ``fq.dequantize``, ``fq.fake_quantize``, ``fq.choose_qparams``.

Numeric conventions (bit-exact with ONNX's reference QuantizeLinear/DequantizeLinear and,
for uint8 per-tensor, DynamicQuantizeLinear):

* ``q = clip(rint(x / scale) + zero_point, qmin, qmax)``: true float32 division,
  round half to even; ``x_hat = (q - zero_point) * scale`` in float32.
* asymmetric: range ``[min(min x, 0), max(max x, 0)]``, ``scale = (rmax - rmin) /
  (qmax - qmin)`` (``rmax / n - rmin / n`` when that overflows), ``zero_point =
  clip(rint(qmin - rmin / scale))``; symmetric: ``scale = max|x| / ((qmax - qmin) // 2)``,
  zero point 0 (signed, stored as None) or the midpoint (unsigned).  float32 throughout;
  a zero range gives scale 1; computed scales are floored at the smallest normal float32.

``backend="auto"`` runs on the GPU when ``x`` (``qt.data``) is a CUDA array; the results
of device input stay on the device (a QTensor's data, scale and zero point, QParams and
float outputs are device arrays: ``fq.to_host`` brings them back).  Host input with
``backend="cuda"`` is copied in and its results copied back: host arrays, as on the CPU.
"""
import math

import numpy as np

from . import _arrays, _backend, _device, _memory, _plans
from . import _granularity as G
from ._qtensor import QParams, QTensor, dtype_info
from ._fpenv import ieee_default

SCHEMES = ("asymmetric", "symmetric")
NAN_POLICIES = ("raise", "ignore")
TINY = np.finfo(np.float32).tiny
# Inputs that need converting to float32 go in pieces of about PIECE elements (see
# _Job.pieces): 4 MB of float32 at a time, never a copy of it all.
PIECE = 1 << 20
# Dynamic quantization by rows (range, parameters and codes in one pass) takes rows of at
# most this many elements: 256 KB of float32, well inside a core's L2.
ROW_IN_CACHE = 1 << 16
# ... and block rows (a group per column, PerGroup along the first axis) of at most this
# many: 4 MB of float32, in the last-level cache when its codes are written.
BLOCK_ROW_IN_CACHE = 1 << 20
# Dynamic per-tensor quantization of a ready input (native float32, C-contiguous) runs its
# range pass, parameters and quantize pass in one kernel call: the Python between them
# ran with caches cold from the first pass (140 us of 2.9 ms for 16M elements here).
TENSOR_IN_ONE_CALL = True
# ... and so does PerChannel on the last axis (a range per column: two passes).
CHANNELS_IN_ONE_CALL = True


def quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None, zero_point=None,
             narrow_range=False, nan_policy="raise", backend="auto"):
    """Quantize ``x`` linearly to integer ``dtype``; returns a :class:`QTensor`.

    Dynamic when ``scale`` is None (range from the data, min/max observer), static
    otherwise (``zero_point`` defaults to 0, as ONNX QuantizeLinear).  See the module
    docstring for the formulas.
    """
    if scale is not None:  # (no floating-point arithmetic here before the kernel's own)
        qt = _plans.static_per_tensor(x, dtype, scheme, granularity, scale, zero_point,
                                      narrow_range, nan_policy, backend)
        if qt is not None:
            return qt
    return _quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range,
                     nan_policy, backend)


@ieee_default
def _quantize(x, dtype, scheme, granularity, scale, zero_point, narrow_range, nan_policy,
              backend):
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    if scale is None and zero_point is None and job.in_one_call():
        data = job.empty_codes()
        scale, zero_point = job.quantize_in_one_call(data, fake=False)
        return job.result(QTensor(data, dtype, scale, zero_point, job.shape, job.granularity))
    nan_free = job.nan_free(scale)
    scale, zero_point = job.qparams(scale, zero_point)  # (its temporaries freed first)
    data = job.empty_codes()
    nan = False
    for x3, blocks3, rows, part in job.pieces():
        out = job.piece_of(data, part, x3.shape, packed=job.bits < 8)
        nan |= job.kernels.quantize(x3, blocks3, *job.grids(scale, zero_point, x3, blocks3,
                                                            rows), job.qmin, job.qmax, job.bits,
                                    out, nan_free=nan_free)
    job.check_nan(nan)
    return job.result(QTensor(data, dtype, scale, zero_point, job.shape, job.granularity))


@ieee_default
def fake_quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None,
                  zero_point=None, narrow_range=False, nan_policy="raise", backend="auto"):
    """``dequantize(quantize(x, ...))`` fused in one pass: float32 of ``x``'s shape."""
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    if scale is None and zero_point is None and job.in_one_call():
        out = job.empty(np.float32)
        job.quantize_in_one_call(out, fake=True)
        return job.result(out)
    nan_free = job.nan_free(scale)
    scale, zero_point = job.qparams(scale, zero_point)
    out = job.empty(np.float32)
    nan = False
    for x3, blocks3, rows, part in job.pieces():
        nan |= job.kernels.fake_quantize(x3, blocks3,
                                         *job.grids(scale, zero_point, x3, blocks3, rows),
                                         job.qmin, job.qmax, job.piece_of(out, part, x3.shape),
                                         nan_free=nan_free)
    job.check_nan(nan)
    return job.result(out)


@ieee_default
def choose_qparams(x, dtype, scheme="asymmetric", granularity="tensor", observer="minmax",
                   narrow_range=False, nan_policy="raise", backend="auto"):
    """Scale and zero point that ``quantize`` would compute, as :class:`QParams`."""
    if observer != "minmax":
        raise ValueError(f"observer must be 'minmax' here, got {observer!r} (moving_average, "
                         "percentile, entropy and mse come with calibration)")
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    return job.result(QParams(*job.qparams(None, None)))


@ieee_default
def dequantize(qt, backend="auto"):
    """``(codes - zero_point) * scale`` in float32, in the original shape."""
    if not isinstance(qt, QTensor):
        raise TypeError(f"qt must be a fastq.QTensor, got {type(qt).__name__}")
    kernels = _kernels(backend, qt.data)
    on_gpu, on_host = _on_gpu(kernels), not _device.is_device(qt.data)
    if on_gpu:  # codes to the device (when on the host); the small parameters to the host
        qt = QTensor(_device.to_device(qt.data) if on_host else qt.data, qt.dtype,
                     _device.to_host(qt.scale), _device.to_host(qt.zero_point), qt.shape,
                     qt.granularity)
    elif not on_host:  # backend="cpu" asked for a QTensor that lives on the GPU
        qt = _device.to_host(qt)
    out = _memory.empty(qt.shape, np.float32, on_gpu=on_gpu)
    if qt.size:
        blocks = qt.granularity.blocks(qt.shape)
        shape3, blocks3 = _view(qt.shape, blocks)
        codes = qt.codes()
        codes3 = (codes.reshape(shape3) if on_gpu
                  else np.require(codes, requirements="C").reshape(shape3))
        grid = _grid(shape3, blocks3)
        zp = 0 if qt.zero_point is None else qt.zero_point
        scale3 = np.ascontiguousarray(qt.scale, np.float32).reshape(grid)
        zero3 = np.broadcast_to(np.asarray(zp, np.float32), qt.scale.shape).reshape(grid).copy()
        kernels.dequantize(codes3, blocks3, scale3, zero3, out.reshape(shape3))
    return _device.to_host(out) if on_gpu and on_host else out


class _Job:
    """A validated quantization request: the float32 input in its canonical view."""

    def __init__(self, x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
        key = _plans.plan_key(x, dtype, scheme, granularity, narrow_range, nan_policy,
                              backend)
        plan = _plans.plans.get(key) if key is not None else None
        if plan is None:
            plan, x = self._plan(x, dtype, scheme, granularity, narrow_range, nan_policy,
                                 backend)
            if key is not None and not plan["on_gpu"]:
                _plans.remember(key, plan)
        vars(self).update(plan)
        self.source = None  # an input that needs converting: taken in pieces
        if not self.ready and x.ndim:
            self.source = x  # converted piece by piece
            return
        if not self.ready:  # 0-d
            x = x.astype(np.float32)
        self.x3 = x.reshape(self.view[0])

    @staticmethod
    def _plan(x, dtype, scheme, granularity, narrow_range, nan_policy, backend):
        """What the arguments fix, validated (everything but the data), and ``x`` as an
        array: on the CPU any float ndarray; for the GPU float32 on the device."""
        kernels = _kernels(backend, x)
        qmin, qmax, bits, code_dtype = dtype_info(dtype)
        scheme = _arrays.check_choice(scheme, "scheme", SCHEMES)
        nan_policy = _arrays.check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        if not isinstance(narrow_range, (bool, np.bool_)):
            raise TypeError(f"narrow_range must be a bool, got {type(narrow_range).__name__}")
        qmin = -qmax if narrow_range and qmin < 0 else qmin
        try:
            granularity = G.as_granularity(granularity)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        on_gpu, on_host, ready = _on_gpu(kernels), True, True
        if on_gpu:  # float32, C-contiguous, on the device (host x: copied in)
            x, on_host = _device.float32_input(x)
        else:
            x = _arrays.as_float_array(x)
            ready = x.dtype == np.float32 and x.dtype.isnative and x.flags.c_contiguous
        shape = x.shape
        blocks = granularity.blocks(shape)
        param_shape = granularity.param_shape(shape)
        tensor_call = None  # (static per tensor: the kernel call laid out once)
        if ready and param_shape == () and hasattr(kernels, "TensorCall"):
            tensor_call = kernels.TensorCall(shape, code_dtype, qmin, qmax, bits)
        return dict(
            kernels=kernels, dtype=dtype, qmin=qmin,
            qmax=qmax, bits=bits, code_dtype=code_dtype, scheme=scheme,
            nan_policy=nan_policy, granularity=granularity, on_gpu=on_gpu, on_host=on_host,
            ready=ready, shape=shape, size=math.prod(shape), blocks=blocks,
            param_shape=param_shape, tensor_call=tensor_call,
            grid=tuple(-(-n // max(b, 1)) for n, b in zip(shape, blocks)),
            view=_view(shape, blocks)), x  # (_view raises on views past 3 dimensions)

    def pieces(self):
        """``(x3, blocks3, rows, part)`` to run the kernels on: the whole input in its
        canonical view (``part`` None), or for an input that needs converting (another
        dtype or byte order, not C-contiguous) runs of rows ``part = (i, j)`` along axis
        0, each converted to float32 in turn (about ``PIECE`` elements: no temporary the
        size of a big input), aligned to the blocks along axis 0 and to whole bytes of
        packed codes; ``rows`` slices axis 0 of the full-rank parameter grid."""
        if not self.size:
            return
        if self.source is None:
            yield self.x3, self.view[1], ..., None
            return
        n0, b0 = self.shape[0], self.blocks[0]
        whole = b0 >= n0  # one parameter block along axis 0: any run of rows will do
        unit = 8 if whole else math.lcm(b0, 8)
        step = max(unit, PIECE // (self.size // n0) // unit * unit)
        for i in range(0, n0, step):
            j = min(i + step, n0)
            xc = _to_float32(self.source[i:j])
            view = _view(xc.shape, (j - i if whole else b0,) + self.blocks[1:])
            rows = slice(0, 1) if whole else slice(i // b0, -(-j // b0))
            yield xc.reshape(view[0]), view[1], rows, (i, j)

    def piece_of(self, out, part, shape3, packed=False):
        """The part of the output ``out`` a piece writes: ``x``'s shape (codes, values)
        viewed as ``shape3``, or the packed bytes of its codes."""
        if part is None:
            return out if packed else out.reshape(shape3)
        i, j = part
        row = self.size // self.shape[0]
        if packed:  # pieces start on byte boundaries
            return out[i * row * self.bits // 8:-(-j * row * self.bits // 8)]
        return out[i:j].reshape(shape3)

    def empty_codes(self):
        """The codes' array: x's shape, or for 4/2 bits the packed bytes (1-D)."""
        if self.bits < 8:  # packed by the quantize pass itself
            nbytes = -(-self.size * self.bits // 8)
            return _memory.empty(nbytes, np.uint8, on_gpu=self.on_gpu)
        return self.empty(self.code_dtype)

    def empty(self, dtype):
        """An output array of x's shape where the work runs (host or device)."""
        return _memory.empty(self.shape, dtype, on_gpu=self.on_gpu)

    def result(self, r):
        """GPU work on device input stays there (scale and zero point included); GPU work
        on host input comes back to the host."""
        if not self.on_gpu:
            return r
        if self.on_host:
            return _device.to_host(r)
        if isinstance(r, (QTensor, QParams)):
            zp = r.zero_point
            scale = _device.to_device(np.asarray(r.scale))
            zp = None if zp is None else _device.to_device(np.asarray(zp))
            if isinstance(r, QParams):
                return QParams(scale, zp)
            return QTensor(r.data, r.dtype, scale, zp, r.shape, r.granularity)
        return r

    def grids(self, scale, zero_point, x3, blocks3, rows):
        """Scale and zero point (float32) on the grid of the piece ``x3``."""
        grid = _grid(x3.shape, blocks3)
        scale3 = np.array(scale, np.float32).reshape(self.grid)[rows]
        zero3 = np.zeros(self.grid, np.float32)
        if zero_point is not None:
            zero3[...] = np.reshape(zero_point, self.grid)
        return scale3.reshape(grid), zero3[rows].reshape(grid)  # (rows: C-contiguous)

    def qparams(self, scale, zero_point):
        if scale is None:
            if zero_point is not None:
                raise ValueError("zero_point is only used with a given scale")
            rmin, rmax = self.value_range()
            return qparams_from_range(rmin, rmax, self.scheme, self.qmin, self.qmax,
                                      self.code_dtype)
        return check_static_params(scale, zero_point, self.dtype, self.shape,
                                   self.granularity, self.qmin, self.qmax)

    def nan_free(self, scale):
        """Whether x is known to hold no NaN once ``qparams(scale, ...)`` has run: its
        range pass raises on one unless NaN is ignored (so the quantize pass need not
        look for them)."""
        return scale is None and self.nan_policy == "raise"

    def check_nan(self, has_nan):
        _plans.check_nan(has_nan, self.nan_policy)

    def in_one_call(self):
        """Whether dynamic quantization can run in one call of a backend that has it
        (``quantize_dynamic``): per tensor, or each row of the view one parameter group
        (``PerChannel`` on the first axis, ``PerGroup`` on the last, ...) or each column
        of a block row (``PerGroup`` along the first axis), with rows (block rows) enough
        to share out and small enough to stay in cache while they are coded."""
        (P, K, Q), (bp, bk, bq) = self.view
        if not self.size or not hasattr(self.kernels, "quantize_dynamic") or bp != 1:
            return False
        if (bk, bq) == (1, Q):  # a group per row
            if P * K > 1:
                return Q <= ROW_IN_CACHE
            return TENSOR_IN_ONE_CALL and self.source is None  # (pieces: a range each)
        if bq == 1 and P == 1 and bk == K:  # a group per column (PerChannel, last axis)
            return CHANNELS_IN_ONE_CALL and self.source is None  # (pieces: ranges each)
        # a group per column of each block row (PerGroup along the first axis)
        return bq == 1 and P * K > bk and bk * Q <= BLOCK_ROW_IN_CACHE

    def quantize_in_one_call(self, out, fake):
        """Range, parameters and codes (or fake values) into ``out`` in one call;
        returns the scale and zero point, as ``qparams`` would have."""
        symmetric = self.scheme == "symmetric"
        scale, zero = np.empty(self.grid, np.float32), np.empty(self.grid, np.float32)
        has_nan = has_inf = False
        for x3, blocks3, rows, part in self.pieces():
            grid3 = _grid(x3.shape, blocks3)  # (rows of C-contiguous arrays: views)
            nan, inf = self.kernels.quantize_dynamic(
                x3, blocks3, scale[rows].reshape(grid3), zero[rows].reshape(grid3), self.qmin,
                self.qmax, self.bits,
                self.piece_of(out, part, x3.shape, packed=self.bits < 8 and not fake),
                symmetric, self.nan_policy == "ignore", fake)
            has_nan, has_inf = has_nan or nan, has_inf or inf
        self.check_range(has_nan, has_inf)
        scale = scale.reshape(self.param_shape)
        if symmetric and self.qmin < 0:
            return scale, None
        return scale, zero.reshape(self.param_shape).astype(self.code_dtype)

    def check_range(self, has_nan, has_inf):
        """After a range pass: a NaN or inf in a range raises unless ignored."""
        if self.nan_policy == "raise" and has_nan:
            raise ValueError("x contains NaN (use nan_policy='ignore' to leave NaN out of "
                             "the range and code it as the zero point)")
        if self.nan_policy == "raise" and has_inf:
            raise ValueError("x contains inf: the range cannot be computed (give scale=, "
                             "or use nan_policy='ignore')")

    def value_range(self):
        if not self.size:
            return (np.zeros(self.param_shape, np.float32),) * 2
        rmin = np.zeros(self.grid, np.float32)
        rmax = np.zeros(self.grid, np.float32)
        has_nan = has_inf = False
        for x3, blocks3, rows, _ in self.pieces():
            grid = _grid(x3.shape, blocks3)
            lo, hi = np.zeros(grid, np.float32), np.zeros(grid, np.float32)
            nan, inf = self.kernels.minmax(x3, blocks3, lo, hi)
            has_nan, has_inf = has_nan or nan, has_inf or inf
            part = rmin[rows].shape  # (each range already holds 0)
            rmin[rows] = np.minimum(rmin[rows], lo.reshape(part))
            rmax[rows] = np.maximum(rmax[rows], hi.reshape(part))
        self.check_range(has_nan, has_inf)
        return rmin.reshape(self.param_shape), rmax.reshape(self.param_shape)


def qparams_from_range(rmin, rmax, scheme, qmin, qmax, code_dtype):
    """float32 scale and zero point (None for signed symmetric) from the range."""
    rmin = np.asarray(rmin, np.float32)
    rmax = np.asarray(rmax, np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if scheme == "symmetric":
            amax = np.maximum(np.abs(rmin), np.abs(rmax))
            scale = amax / np.float32((qmax - qmin) // 2)
        else:
            n = np.float32(qmax - qmin)
            scale = (rmax - rmin) / n
            scale = np.where(np.isinf(scale), rmax / n - rmin / n, scale)
        scale = np.where(rmax == rmin, np.float32(1), np.maximum(scale, TINY))
        scale = np.asarray(scale, np.float32)
        if scheme == "symmetric":
            if qmin < 0:
                return scale, None
            return scale, np.full(scale.shape, (qmax + qmin + 1) // 2, code_dtype)
        zp = np.clip(np.rint(np.float32(qmin) - rmin / scale), qmin, qmax)
    return scale, np.asarray(zp).astype(code_dtype)


def check_static_params(scale, zero_point, dtype, shape, granularity, qmin, qmax):
    """Validate a given scale / zero point against the granularity's parameter shape."""
    param_shape = granularity.param_shape(shape)
    code_dtype = dtype_info(dtype)[3]
    try:
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


def pack_codes(codes, bits):
    """Pack unpacked codes C-order, first element in the low bits (on codes' device)."""
    on_gpu = _device.is_device(codes)
    flat = codes.reshape(codes.size)
    n = math.ceil(flat.size * bits / 8)
    out = _memory.empty(n, np.uint8, on_gpu=on_gpu)
    if flat.size:
        _backend.module("cuda" if on_gpu else "cpu", "pack").pack_into(flat, bits, out)
    return out


def _kernels(backend, *arrays):
    return _backend.module(_backend.resolve(backend, *arrays), "quant")


def _on_gpu(kernels):
    return kernels.__name__.startswith("fastq._cuda")


def _to_float32(a):
    """A native float32 C-contiguous copy: float16/bfloat16 exactly, float64 rounded once
    (half to even), any byte order or layout (the cast kernels, in parallel)."""
    from ._casting import cast
    return cast(a, "float32")


def _view(shape, blocks):
    view = G.canonical_view(shape, blocks)
    if view is None:
        raise NotImplementedError(
            f"granularity blocks {blocks} on shape {shape} do not reduce to 3 dimensions")
    return view


def _grid(shape3, blocks3):
    return tuple(-(-d // b) for d, b in zip(shape3, blocks3))
