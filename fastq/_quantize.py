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

from . import _arrays, _backend, _device
from . import _granularity as G
from ._qtensor import QParams, QTensor, dtype_info

SCHEMES = ("asymmetric", "symmetric")
NAN_POLICIES = ("raise", "ignore")
TINY = np.finfo(np.float32).tiny


def quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None, zero_point=None,
             narrow_range=False, nan_policy="raise", backend="auto"):
    """Quantize ``x`` linearly to integer ``dtype``; returns a :class:`QTensor`.

    Dynamic when ``scale`` is None (range from the data, min/max observer), static
    otherwise (``zero_point`` defaults to 0, as ONNX QuantizeLinear).  See the module
    docstring for the formulas.
    """
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    scale, zero_point = job.qparams(scale, zero_point)
    if job.bits < 8:  # packed by the quantize pass itself
        nbytes = -(-job.size * job.bits // 8)
        data = _device.empty(nbytes, np.uint8) if job.on_gpu else np.empty(nbytes, np.uint8)
        out = data
    else:
        data = job.empty(job.code_dtype)
        out = data.reshape(job.view[0])
    if job.size:
        job.check_nan(job.kernels.quantize(job.x3, job.view[1], *job.grids(scale, zero_point),
                                           job.qmin, job.qmax, job.bits, out))
    return job.result(QTensor(data, dtype, scale, zero_point, job.shape, job.granularity))


def fake_quantize(x, dtype, scheme="asymmetric", granularity="tensor", scale=None,
                  zero_point=None, narrow_range=False, nan_policy="raise", backend="auto"):
    """``dequantize(quantize(x, ...))`` fused in one pass: float32 of ``x``'s shape."""
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    scale, zero_point = job.qparams(scale, zero_point)
    out = job.empty(np.float32)
    if job.size:
        job.check_nan(job.kernels.fake_quantize(job.x3, job.view[1],
                                                *job.grids(scale, zero_point), job.qmin,
                                                job.qmax, out.reshape(job.view[0])))
    return job.result(out)


def choose_qparams(x, dtype, scheme="asymmetric", granularity="tensor", observer="minmax",
                   narrow_range=False, nan_policy="raise", backend="auto"):
    """Scale and zero point that ``quantize`` would compute, as :class:`QParams`."""
    if observer != "minmax":
        raise ValueError(f"observer must be 'minmax' here, got {observer!r} (moving_average, "
                         "percentile, entropy and mse come with calibration)")
    job = _Job(x, dtype, scheme, granularity, narrow_range, nan_policy, backend)
    return job.result(QParams(*job.qparams(None, None)))


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
    out = _device.empty(qt.shape, np.float32) if on_gpu else np.empty(qt.shape, np.float32)
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
        self.kernels = _kernels(backend, x)
        self.dtype = dtype
        qmin, self.qmax, self.bits, self.code_dtype = dtype_info(dtype)
        self.scheme = _arrays.check_choice(scheme, "scheme", SCHEMES)
        self.nan_policy = _arrays.check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        if not isinstance(narrow_range, (bool, np.bool_)):
            raise TypeError(f"narrow_range must be a bool, got {type(narrow_range).__name__}")
        self.qmin = -self.qmax if narrow_range and qmin < 0 else qmin
        try:
            self.granularity = G.as_granularity(granularity)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        self.on_gpu, self.on_host = _on_gpu(self.kernels), True
        if self.on_gpu:  # float32, C-contiguous, on the device (host x: copied in)
            x, self.on_host = _device.float32_input(x)
        else:
            x = _arrays.as_float_array(x)
            if not (x.dtype == np.float32 and x.dtype.isnative):
                x = x.astype(np.float32)  # float16/bfloat16 exactly; float64 rounded once
            if not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)  # (never on 0-d input: it would become 1-d)
        self.shape, self.size = x.shape, x.size
        self.blocks = self.granularity.blocks(x.shape)
        self.param_shape = self.granularity.param_shape(x.shape)
        self.view = _view(x.shape, self.blocks)
        self.x = x
        self.x3 = x.reshape(self.view[0])

    def empty(self, dtype):
        """An output array of x's shape where the work runs (host or device)."""
        return _device.empty(self.shape, dtype) if self.on_gpu else np.empty(self.shape, dtype)

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

    def grids(self, scale, zero_point):
        grid = _grid(*self.view)
        scale3 = np.ascontiguousarray(scale, np.float32).reshape(grid)
        zp = 0 if zero_point is None else zero_point
        zero3 = np.broadcast_to(np.asarray(zp, np.float32), np.shape(scale)).reshape(grid)
        return scale3, np.ascontiguousarray(zero3)

    def qparams(self, scale, zero_point):
        if scale is None:
            if zero_point is not None:
                raise ValueError("zero_point is only used with a given scale")
            rmin, rmax = self.value_range()
            return qparams_from_range(rmin, rmax, self.scheme, self.qmin, self.qmax,
                                      self.code_dtype)
        return check_static_params(scale, zero_point, self.dtype, self.shape,
                                   self.granularity, self.qmin, self.qmax)

    def check_nan(self, has_nan):
        """After the quantize pass (whose output is ours until returned)."""
        if has_nan and self.nan_policy == "raise":
            raise ValueError("x contains NaN (use nan_policy='ignore' to code NaN as the "
                             "zero point)")

    def value_range(self):
        if not self.size:
            return (np.zeros(self.param_shape, np.float32),) * 2
        grid = _grid(*self.view)
        rmin = np.zeros(grid, np.float32)
        rmax = np.zeros(grid, np.float32)
        has_nan, has_inf = self.kernels.minmax(self.x3, self.view[1], rmin, rmax)
        if self.nan_policy == "raise" and has_nan:
            raise ValueError("x contains NaN (use nan_policy='ignore' to leave NaN out of "
                             "the range and code it as the zero point)")
        if self.nan_policy == "raise" and has_inf:
            raise ValueError("x contains inf: the range cannot be computed (give scale=, "
                             "or use nan_policy='ignore')")
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
    if not (np.isfinite(scale).all() and (scale > 0).all()):
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
    out = _device.empty(n, np.uint8) if on_gpu else np.empty(n, np.uint8)
    if flat.size:
        _backend.module("cuda" if on_gpu else "cpu", "pack").pack_into(flat, bits, out)
    return out


def _kernels(backend, *arrays):
    return _backend.module(_backend.resolve(backend, *arrays), "quant")


def _on_gpu(kernels):
    return kernels.__name__.startswith("fastq._cuda")


def _view(shape, blocks):
    view = G.canonical_view(shape, blocks)
    if view is None:
        raise NotImplementedError(
            f"granularity blocks {blocks} on shape {shape} do not reduce to 3 dimensions")
    return view


def _grid(shape3, blocks3):
    return tuple(-(-d // b) for d, b in zip(shape3, blocks3))
