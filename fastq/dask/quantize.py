"""``fastq.dask.quantize``, ``fake_quantize``, ``choose_qparams`` and ``dequantize``.

Dynamic quantization of a Dask array runs in three lazy steps, each a Dask graph:

1. **Ranges**: each chunk's ``[min, max]`` per parameter cell, by fastq's own range
   pass on the chunk (``QuantizeCall.value_range`` under the granularity's
   restriction to the chunk: ``layout.ChunkLayout.chunk_granularity``), NaN policy
   included; then ``dask.array.reduction`` reduces them across chunks along the axes
   with one parameter (a tree reduction of min and max: exact in any order).
2. **Parameters**: ``fastq.ops.linear.qparams_from_range`` on the reduced ranges: the
   function (and kernel) the in-memory path uses, so the same float32 bits.
3. **Codes**: each chunk quantized statically (``fq.quantize(chunk, dtype,
   scale=..., zero_point=...)``) with its slice of the parameters: the same formula,
   element by element, as the in-memory pass.  4/2-bit codes are packed per chunk along
   the last axis.  The chunks are read again for this pass (a clone of ``x``'s graph,
   bound to the parameters), so no chunk is held in memory between the passes.

So the result equals ``fq.quantize`` of the whole array bit for bit.
"""
import numpy as np

from ..core import checks
from ..core.codes import dtype_info
from ..core.granularity import as_granularity
from ..ops import QParams, plans
from ..ops import quantization as ops_quantization
from ..ops.linear import qparams_from_range
from .layout import ChunkLayout, packed_chunks
from .qtensor import DaskQTensor, require_dask
from .tasks import in_task

SCHEMES = ops_quantization.SCHEMES
NAN_POLICIES = ops_quantization.NAN_POLICIES


class DaskQuantizeCall:
    """One validated ``fastq.dask`` quantization: everything but the data checked at
    graph-build time, ``x`` rechunked to the granularity's groups (and whole bytes)."""

    def __init__(self, x, dtype, scheme, granularity, narrow_range, nan_policy, packed):
        da = require_dask()
        if not isinstance(x, da.Array):
            raise TypeError(f"x must be a dask.array.Array, got {type(x).__name__} "
                            "(use fq.quantize for in-memory arrays)")
        checks.as_float_array(np.empty(0, x.dtype), "x")  # (the dtype check alone)
        if x.ndim == 0:
            raise ValueError("x must have at least one dimension (use fq.quantize for 0-d)")
        self.qmin, self.qmax, self.bits, self.code_dtype = dtype_info(dtype)
        self.dtype = dtype
        self.scheme = checks.check_choice(scheme, "scheme", SCHEMES)
        self.nan_policy = checks.check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        self.narrow_range = checks.check_bool(narrow_range, "narrow_range")
        if self.narrow_range and self.qmin < 0:
            self.qmin = -self.qmax
        self.granularity = as_granularity(granularity)
        self.layout = ChunkLayout(x.shape, self.granularity)
        bits = self.bits if packed else 8
        if packed:
            self.layout.check_packable(self.bits)
        chunks = self.layout.aligned_chunks(x.chunks, bits)
        self.x = x if chunks == x.chunks else x.rechunk(chunks)

    def options(self):
        return dict(qtype=self.dtype, scheme=self.scheme, narrow_range=self.narrow_range,
                    nan_policy=self.nan_policy, layout=self.layout)

    def ranges(self):
        """Lazy ``(..., 4)`` array of ``[rmin, rmax, has_nan, has_inf]`` on the full-rank
        grid, chunked as ``x``'s chunks map onto it (one chunk along the whole axes);
        the flags are each chunk's, reduced with its ranges (by max)."""
        da = require_dask()
        x, layout = self.x, self.layout
        meta = np.empty((0,) * (x.ndim + 1), np.float32)
        per_chunk = da.map_blocks(
            _chunk_ranges, x, layout=layout, chunks=layout.grid_chunks(x.chunks) + ((4,),),
            new_axis=x.ndim, dtype=np.float32, meta=meta)
        if not layout.whole_axes:
            return per_chunk
        return da.reduction(per_chunk, _reduce_ranges, _reduce_ranges,
                            combine=_reduce_ranges, axis=layout.whole_axes, keepdims=True,
                            dtype=np.float32, concatenate=True, meta=meta)

    def qparams_grid(self):
        """Lazy scale (float32) and zero point (code dtype, or None for signed
        symmetric) on the full-rank grid, chunked like ``ranges()``.  A NaN or inf
        anywhere (the flags reduced over every chunk first) raises as in memory."""
        ranges = self.ranges()
        ndim = ranges.ndim - 1
        flags = ranges[..., 2:].max(axis=tuple(range(ndim)), keepdims=True)
        common = dict(scheme=self.scheme, qmin=self.qmin, qmax=self.qmax,
                      code_dtype=self.code_dtype, nan_policy=self.nan_policy,
                      drop_axis=ndim)
        scale = ranges.map_blocks(_params_of_ranges, flags, which=0, dtype=np.float32,
                                  meta=np.empty((0,) * ndim, np.float32), **common)
        if self.scheme == "symmetric" and self.qmin < 0:
            return scale, None
        zero = ranges.map_blocks(_params_of_ranges, flags, which=1, dtype=self.code_dtype,
                                 meta=np.empty((0,) * ndim, self.code_dtype), **common)
        return scale, zero

    def per_chunk(self, function, scale, zero, chunks, dtype):
        """``function(x_chunk, scale_chunk, zero_chunk, ...)`` over ``x``'s chunks, each
        with its block of the parameter grid (one block along the whole axes, broadcast;
        map_blocks pairs blocks by index: the grid's chunks are the groups of x's chunks)."""
        da = require_dask()
        from dask.graph_manipulation import bind
        params = [scale] + ([] if zero is None else [zero])
        # x's chunks are read again, by a copy of its graph that runs once the parameters
        # are known: sharing the reads with the range pass would hold every chunk in
        # memory until the last range is in.
        x = bind(self.x, params)
        arrays = [x] + params
        return da.map_blocks(function, *arrays, chunks=chunks, dtype=dtype,
                             meta=np.empty((0,) * x.ndim, dtype),
                             **self.options())


@in_task
def _chunk_ranges(xb, layout):
    """``[rmin, rmax, has_nan, has_inf]`` of each parameter cell of one chunk, on its
    grid, stacked last: fastq's own range pass (each range holds 0, as in memory: the
    asymmetric range's rule, and no change to the symmetric absmax; NaN and inf are
    left out of it and flagged, for ``_params_of_ranges`` to raise on as in memory)."""
    grid = layout.chunk_grid(xb.shape)
    out = np.zeros(grid + (4,), np.float32)
    if xb.size:
        job = ops_quantization.QuantizeCall(xb, "int8", "asymmetric",
                                            layout.chunk_granularity(xb.shape), False,
                                            "ignore", "cpu")
        rmin, rmax, has_nan, has_inf = job.ranges_and_flags()
        out[..., 0], out[..., 1] = rmin.reshape(grid), rmax.reshape(grid)
        out[..., 2], out[..., 3] = has_nan, has_inf
    return out


def _reduce_ranges(a, axis, keepdims):
    """min of the lower ends, max of the upper ends and of the flags along ``axis``
    (exact in any order)."""
    return np.concatenate([a[..., :1].min(axis=axis, keepdims=keepdims),
                           a[..., 1:].max(axis=axis, keepdims=keepdims)], axis=-1)


@in_task
def _params_of_ranges(rb, flags, which, scheme, qmin, qmax, code_dtype, nan_policy):
    """Scale (``which`` 0) or zero point (1) of the ranges ``rb``; a NaN or inf flagged
    anywhere in x raises first, with the in-memory call's error (NaN before inf)."""
    has_nan, has_inf = (bool(f) for f in np.asarray(flags).reshape(-1))
    plans.check_range(has_nan, has_inf, nan_policy)
    scale, zero = qparams_from_range(rb[..., 0], rb[..., 1], scheme, qmin, qmax, code_dtype)
    return scale if which == 0 else zero


def _chunk_params(layout, xb, scale_b, zero_b):
    """A chunk's granularity and parameters in the shape ``fq.quantize`` takes."""
    grid = layout.chunk_grid(xb.shape)
    gran = layout.chunk_granularity(xb.shape)
    scale = np.asarray(scale_b, np.float32).reshape(grid)
    zero = None if zero_b is None else np.asarray(zero_b).reshape(grid)
    return gran, scale, zero


@in_task
def _quantize_chunk(xb, scale_b, zero_b=None, *, qtype, scheme, narrow_range, nan_policy,
                    layout):
    from .. import ops
    gran, scale, zero = _chunk_params(layout, xb, scale_b, zero_b)
    qt = ops.quantize(xb, qtype, scheme=scheme, granularity=gran, scale=scale,
                      zero_point=zero, narrow_range=narrow_range, nan_policy=nan_policy,
                      backend="cpu")
    if dtype_info(qtype)[2] < 8:  # packed along the last axis: rows of whole bytes
        return qt.data.reshape(xb.shape[:-1] + (-1,))
    return qt.data


@in_task
def _fake_quantize_chunk(xb, scale_b, zero_b=None, *, qtype, scheme, narrow_range,
                         nan_policy, layout):
    from .. import ops
    gran, scale, zero = _chunk_params(layout, xb, scale_b, zero_b)
    return ops.fake_quantize(xb, qtype, scheme=scheme, granularity=gran, scale=scale,
                             zero_point=zero, narrow_range=narrow_range,
                             nan_policy=nan_policy, backend="cpu")


def quantize(x, dtype, scheme="asymmetric", granularity="tensor", narrow_range=False,
             nan_policy="raise"):
    """Quantize the Dask array ``x`` lazily; the result equals ``fq.quantize(x, ...)``.

    Parameters
    ----------
    x : dask.array.Array
        float16, bfloat16, float32 or float64, at least 1-D, any chunking.
    dtype : str
        A linear integer dtype: ``int8 uint8 int16 uint16 int4 uint4 int2 uint2``.
    scheme, granularity, narrow_range, nan_policy
        As for :func:`fastq.quantize` (dynamic, min/max observer).

    Returns
    -------
    DaskQTensor
        Lazy codes and parameters; ``.compute()`` gives the :class:`fastq.QTensor`
        that ``fq.quantize(x.compute(), ...)`` returns, bit for bit.

    Notes
    -----
    Ranges are reduced across chunks before any parameter is computed (module
    docstring).  Group and block granularities rechunk the grouped axes to multiples
    of the group where chunks split a group; 4/2-bit dtypes rechunk the last axis to
    whole bytes (and need rows of whole bytes unless ``x`` is one row).  A NaN (or an
    inf with ``nan_policy="raise"``) is found when the graph runs, raising
    ``ValueError`` from ``compute``.

    Raises
    ------
    TypeError
        ``x`` is not a Dask array, or not of a float dtype.
    ValueError
        Bad ``dtype``, ``scheme``, ``nan_policy`` or ``granularity`` (axis out of
        range, block rank), a 0-d ``x``, or 4/2-bit rows that cannot fill whole bytes:
        all when the graph is built.
    """
    job = DaskQuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy,
                           packed=True)
    scale, zero = job.qparams_grid()
    data = job.per_chunk(_quantize_chunk, scale, zero,
                         packed_chunks(job.x.chunks, job.bits) if job.bits < 8
                         else job.x.chunks,
                         np.uint8 if job.bits < 8 else job.code_dtype)
    return DaskQTensor(data, dtype, scale, zero, job.x.shape, job.granularity, job.x.chunks)


def fake_quantize(x, dtype, scheme="asymmetric", granularity="tensor", narrow_range=False,
                  nan_policy="raise"):
    """``dequantize(quantize(x))`` lazily, fused per chunk: a float32 Dask array of
    ``x``'s shape equal to ``fq.fake_quantize(x, ...)`` bit for bit (arguments and
    errors as :func:`quantize`; no byte alignment is needed: nothing is packed)."""
    job = DaskQuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy,
                           packed=False)
    scale, zero = job.qparams_grid()
    return job.per_chunk(_fake_quantize_chunk, scale, zero, job.x.chunks, np.float32)


def choose_qparams(x, dtype, scheme="asymmetric", granularity="tensor", observer="minmax",
                   narrow_range=False, nan_policy="raise"):
    """The parameters :func:`quantize` computes, lazily: a :class:`fastq.QParams` whose
    ``scale`` (float32) and ``zero_point`` (code dtype, or None for signed symmetric)
    are Dask arrays of the granularity's parameter shape, equal to
    ``fq.choose_qparams(x, ...)`` once computed.  ``observer`` must be ``"minmax"``."""
    if observer != "minmax":
        raise ValueError(f"observer must be 'minmax' here, got {observer!r}")
    job = DaskQuantizeCall(x, dtype, scheme, granularity, narrow_range, nan_policy,
                           packed=False)
    scale, zero = job.qparams_grid()
    shape = job.layout.param_shape
    return QParams(scale.reshape(shape), None if zero is None else zero.reshape(shape))


def dequantize(qt):
    """``qt.dequantize()``: a lazy float32 Dask array, equal to ``fq.dequantize`` of
    the computed QTensor bit for bit.  ``qt`` must be a :class:`DaskQTensor`."""
    if not isinstance(qt, DaskQTensor):
        raise TypeError(f"qt must be a fastq.dask.DaskQTensor, got {type(qt).__name__}")
    return qt.dequantize()
