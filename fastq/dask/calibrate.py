"""``fastq.dask.fit``: a :class:`fastq.Calibrator` fitted over a Dask array, chunk by chunk."""
import numpy as np

from ..core import checks
from ..core.granularity import PerTensor
from .qtensor import require_dask


def fit(calibrator, x, **compute_kwargs):
    """Update ``calibrator`` with the chunks of ``x`` along axis 0, in order, as batches.

    Each batch is one chunk along axis 0 spanning every other axis (the other axes are
    rechunked whole), computed one at a time (``compute_kwargs`` go to
    ``dask.compute``: ``scheduler=`` ...), so memory holds one batch: the same updates,
    in the same order, as ``for b in batches: calibrator.update(b)`` over those chunks
    in memory, and so the same statistics and parameters for every observer.

    Parameters
    ----------
    calibrator : fastq.Calibrator
    x : dask.array.Array
        float16, bfloat16, float32 or float64, at least 1-D; axis 0 is the batch axis.

    Returns
    -------
    fastq.Calibrator
        ``calibrator`` itself: ``fit(cal, x).qparams()``.

    Raises
    ------
    TypeError
        ``calibrator`` is not a :class:`fastq.Calibrator`, or ``x`` not a Dask array of
        floats.
    ValueError
        ``x`` is 0-d, or (for any granularity but per tensor, whose batches must share
        one shape) its chunks along axis 0 differ in size: before anything is computed.
    """
    from ..calibration import Calibrator
    da = require_dask()
    if not isinstance(calibrator, Calibrator):
        raise TypeError(f"calibrator must be a fastq.Calibrator, got "
                        f"{type(calibrator).__name__}")
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask.array.Array, got {type(x).__name__}")
    checks.as_float_array(np.empty(0, x.dtype), "x")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (axis 0 is the batch axis)")
    batches = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
    if not isinstance(calibrator.granularity, PerTensor) and len(set(batches.chunks[0])) > 1:
        raise ValueError(f"x's chunks along axis 0 must have one size for "
                         f"{calibrator.granularity!r} (its batches must share one shape), "
                         f"got {batches.chunks[0]}: rechunk x, e.g. x.rechunk({{0: n}}) with "
                         f"n dividing {x.shape[0]}")
    for i in range(batches.numblocks[0]):
        calibrator.update(batches.blocks[i].compute(**compute_kwargs))
    return calibrator
