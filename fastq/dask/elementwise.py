"""``fastq.dask.cast`` (chunk by chunk) and ``fastq.dask.metrics`` (a reduction)."""
import math

import numpy as np

from ..core import formats
from ..ops.casting import plan_cast
from ..ops.error_metrics import host_error_sums, metrics_from_sums
from .qtensor import require_dask
from .tasks import in_task


def _check_dask(a, name):
    da = require_dask()
    if not isinstance(a, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(a).__name__}")
    return a


@in_task
def _cast_chunk(xb, to, rounding, saturate):
    from .. import ops
    return ops.cast(xb, to, rounding=rounding, saturate=saturate, backend="cpu")


def cast(x, to, rounding="nearest_even", saturate=None):
    """``fq.cast`` of each chunk, lazily: a Dask array of ``x``'s shape and chunks in
    the format ``to``, equal to ``fq.cast(x.compute(), to, ...)`` bit for bit.

    Parameters
    ----------
    x : dask.array.Array
        float16, bfloat16, float32 or float64 (or an extended format to decode).
    to, rounding, saturate
        As for :func:`fastq.cast`.  ``rounding="stochastic"`` is not offered: its random
        stream is a function of each element's C-order index in the whole array, which
        a chunk does not know.

    Raises
    ------
    TypeError
        ``x`` is not a Dask array of a float dtype.
    ValueError
        Bad ``to``, ``rounding`` (stochastic included) or ``saturate``: at graph build.
    """
    _check_dask(x, "x")
    if formats.format_of_dtype(x.dtype) is None:
        raise TypeError(f"x must be a float16, bfloat16, float32 or float64 array, "
                        f"got dtype {x.dtype}")
    if rounding == "stochastic":
        raise ValueError("rounding='stochastic' is not available on Dask arrays: its "
                         "random stream follows each element's index in the whole array")
    plan = plan_cast(x.dtype, to, rounding, None, saturate)
    dtype = np.dtype(plan.dst.dtype)
    return x.map_blocks(_cast_chunk, to=to, rounding=rounding, saturate=saturate,
                        dtype=dtype, meta=np.empty((0,) * x.ndim, dtype))


@in_task
def _chunk_sums(xb, hb):
    return host_error_sums(xb, hb).reshape((1,) * xb.ndim + (6,))


def _combine_sums(a, axis, keepdims):
    """Sums add (float64), the largest error is the maximum (NaN propagates)."""
    sums = a[..., :5].sum(axis=axis, keepdims=keepdims)
    worst = a[..., 5:].max(axis=axis, keepdims=keepdims)
    return np.concatenate([sums, worst], axis=-1)


def metrics(x, x_hat):
    """:func:`fastq.metrics` of Dask arrays, lazily: a ``dask.delayed`` object whose
    ``.compute()`` is a :class:`fastq.Metrics`.

    Each chunk runs fastq's metrics kernel (float64 partial sums in fixed order); the
    chunks' six statistics are then reduced by ``dask.array.reduction`` (sums added in
    float64 in a tree, ``max_abs`` the maximum) and finished by the in-memory formulas.

    Parameters
    ----------
    x : dask.array.Array
        A real array (float16, bfloat16, float32, float64, integer), not empty.
    x_hat : dask.array.Array or array_like
        Of ``x``'s shape; rechunked to ``x``'s chunks.

    Notes
    -----
    ``max_abs`` (and NaN/inf propagation) equals the in-memory result exactly.  The
    sums are added in another order than one in-memory pass (chunk by chunk), so
    ``mae``, ``mse``, ``rmse`` and ``sqnr_db`` agree to a relative 1e-12 (each sum has
    non-negative terms: a float64 rounding error of at most ``n_chunks * 2**-52`` of
    it) and ``cosine`` to 1e-12 of ``sum|x*x_hat| / (||x|| ||x_hat||)``.

    Raises
    ------
    TypeError
        ``x`` not a Dask array, or not a real numeric dtype.
    ValueError
        Shapes differ, or ``x`` is empty: at graph build.
    """
    da = require_dask()
    _check_dask(x, "x")
    for name, a in (("x", x), ("x_hat", x_hat)):
        dtype = np.dtype(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype)
        if dtype.kind not in "biuf" and formats.format_of_dtype(dtype) is None:
            raise TypeError(f"{name} must be a real numeric array, got dtype {dtype}")
    if tuple(np.shape(x_hat)) != x.shape:
        raise ValueError(f"x_hat must have x's shape {x.shape}, got {tuple(np.shape(x_hat))}")
    if x.size == 0:
        raise ValueError("x must not be empty")
    if x.ndim == 0:
        x = x.reshape(1)
        x_hat = da.asarray(x_hat).reshape(1)
    x_hat = da.asarray(x_hat).rechunk(x.chunks)
    per_chunk = da.map_blocks(
        _chunk_sums, x, x_hat, chunks=tuple((1,) * len(c) for c in x.chunks) + ((6,),),
        new_axis=x.ndim, dtype=np.float64, meta=np.empty((0,) * (x.ndim + 1), np.float64))
    total = da.reduction(per_chunk, _combine_sums, _combine_sums, combine=_combine_sums,
                         axis=tuple(range(x.ndim)), keepdims=False, dtype=np.float64,
                         concatenate=True, meta=np.empty((0,), np.float64))
    import dask
    return dask.delayed(metrics_from_sums)(total, math.prod(x.shape))
