"""``fq.metrics``: how far an approximation (a dequantized tensor) is from the original."""
import math
from dataclasses import dataclass

import numpy as np

from ..core import checks
from ..backend import CPU, CUDA
from ..runtime import device
from ..core import formats
from ..runtime.fpenv import ieee_default


@dataclass(frozen=True)
class Metrics:
    """Error statistics of ``x_hat`` against ``x`` (Python floats; see :func:`metrics`)."""

    mae: float
    mse: float
    rmse: float
    max_abs: float
    sqnr_db: float
    cosine: float


def _as_real(a, name):
    """A native C-contiguous float32/float64 array of ``a`` (its shape kept)."""
    a = checks.as_array(a, name)
    if a.dtype.kind not in "biuf" and formats.format_of_dtype(a.dtype) is None:
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
        return checks.native_contiguous(a).reshape(a.shape)
    if a.dtype.kind == "f" or formats.format_of_dtype(a.dtype) is not None:
        return np.ascontiguousarray(a, np.float32).reshape(a.shape)  # float16/bf16: exact
    return np.ascontiguousarray(a, np.float64).reshape(a.shape)


def _as_real_device(a, name):
    """A C-contiguous device array the CUDA kernel reads as float64 exactly (host arrays
    are converted as on the CPU, then copied in; bfloat16 widens to float32 first)."""
    if not device.is_device(a):
        return device.to_device(_as_real(a, name))
    d = device.wrap(a, name)
    if d.dtype.kind not in "biuf" and formats.format_of_dtype(d.dtype) is None:
        raise TypeError(f"{name} must be a real numeric array, got dtype {d.dtype}")
    if not d.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous when it lives on the GPU")
    if formats.is_added_dtype(d.dtype):  # (bfloat16...: the exact float32, on the device)
        from .casting import cast
        return cast(d, "float32", backend="cuda")
    return d


@ieee_default
def metrics(x, x_hat):
    """Error of ``x_hat`` as an approximation of ``x``, in one parallel pass over both.

    With ``e = x - x_hat`` over all ``n`` elements, everything accumulated in float64:

    - ``mae = sum|e| / n``, ``mse = sum e**2 / n``, ``rmse = sqrt(mse)``,
      ``max_abs = max|e|``;
    - ``sqnr_db = 10 * log10(sum x**2 / sum e**2)``: ``inf`` when the error is exactly 0
      (also for an all-zero ``x``), ``-inf`` when ``x`` is all zero and the error is not;
    - ``cosine = sum x*x_hat / (sqrt(sum x**2) * sqrt(sum x_hat**2))``: ``1.0`` when both
      are all zero (identical), ``0.0`` when exactly one of them is.

    Parameters
    ----------
    x, x_hat : array_like
        Real arrays of the same shape (float16, bfloat16, float32, float64 or integer);
        no broadcasting.  When either is a CUDA array the pass runs on the GPU (the other
        is copied in), with the same summation order and so the same results.

    Returns
    -------
    Metrics
        ``.mae .mse .rmse .max_abs .sqnr_db .cosine`` as Python floats.

    Notes
    -----
    These are the NumPy float64 formulas (``np.mean(e**2)``, ...) up to summation order:
    fastq sums in fixed-order partial sums, so the result is deterministic and independent
    of the thread count, and agrees with NumPy to a few ulps.  A NaN anywhere in ``x`` or
    ``x_hat`` makes every statistic NaN (as the NumPy formulas do; a NaN is never
    skipped); infinities give NaN or inf as the formulas do.

    Raises
    ------
    TypeError
        Non-numeric or complex input.
    ValueError
        ``x_hat``'s shape differs from ``x``'s, or the arrays are empty.
    """
    on_gpu = device.is_device(x) or device.is_device(x_hat)
    convert = _as_real_device if on_gpu else _as_real
    xa, ha = convert(x, "x"), convert(x_hat, "x_hat")
    if ha.shape != xa.shape:
        raise ValueError(f"x_hat must have x's shape {xa.shape}, got {ha.shape}")
    if xa.size == 0:
        raise ValueError("x must not be empty")
    xf, hf = xa.reshape(xa.size), ha.reshape(ha.size)
    sums = (CUDA if on_gpu else CPU).kernels("metrics").error_stats(xf, hf)
    return metrics_from_sums(sums, xf.size)


def metrics_from_sums(sums, n):
    """:class:`Metrics` of the six statistics of ``n`` elements (``sum|e|, sum e^2,
    sum x^2, sum x_hat^2, sum x*x_hat, max|e|``): the formulas of :func:`metrics`."""
    abs_sum, sq_sum, x_sq, h_sq, dot, max_abs = (float(v) for v in sums)
    mse = sq_sum / n
    nan = math.isnan(sq_sum) or math.isnan(x_sq) or math.isnan(h_sq)
    if nan:
        sqnr = cosine = math.nan
    else:
        sqnr = math.inf if sq_sum == 0 else (
            -math.inf if x_sq == 0 else 10.0 * (math.log10(x_sq) - math.log10(sq_sum)))
        if x_sq == 0 and h_sq == 0:
            cosine = 1.0
        elif x_sq == 0 or h_sq == 0:
            cosine = 0.0
        else:
            cosine = dot / (math.sqrt(x_sq) * math.sqrt(h_sq))
    return Metrics(mae=abs_sum / n, mse=mse, rmse=math.sqrt(mse), max_abs=max_abs,
                   sqnr_db=sqnr, cosine=cosine)


def host_error_sums(x, x_hat):
    """The six statistics of :func:`metrics` (float64 array: ``sum|e|, sum e^2, sum x^2,
    sum x_hat^2, sum x*x_hat, max|e|``) of host arrays of one shape, on the CPU: the
    part of a metrics pass that chunks of a larger array compute each."""
    xa, ha = _as_real(x, "x"), _as_real(x_hat, "x_hat")
    return CPU.kernels("metrics").error_stats(xa.reshape(xa.size), ha.reshape(ha.size))
