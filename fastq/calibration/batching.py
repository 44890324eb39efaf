"""Many tensors, one pass: small tensors of one linear recipe whose parameter blocks
never span rows (per channel along axis 0, groups along the last axis) quantize together.

Their rows are copied one after another into one buffer allocated once per batch, the
buffer is quantized in one ``fq.quantize`` call (one kernel call: range, parameters and
codes together), and each tensor's codes, scales and zero points are views of the
result.  Every row's parameters depend on that row alone, so the result is bit for bit
what quantizing each tensor on its own gives; the Python around each call (~100 us,
more than the kernel on a 256x1024 tensor) is paid once per batch.
"""
import numpy as np

from ..core.codes import INT_DTYPES
from ..core.granularity import PerChannel, PerGroup, as_granularity
from ..ops import QTensor, quantize

# Only tensors of fewer elements join batches: below it the Python around a call
# (~80 us) costs more than copying the tensor into the buffer (~1.2 ns an element, about
# what the kernel itself takes); a larger tensor is quantized on its own (measurements in
# docs/design.md, "Many tensors, one pass").
BATCH_BELOW = 1 << 16
# Elements of one batch's buffer at most (16 MB of float32): memory stays bounded, and
# the rows copied in are still in the last-level cache when the quantize pass reads them.
BATCH_ELEMENTS = 1 << 22


def row_wise(a, kwargs):
    """The key tensors batch under (same recipe, same row length), or None when ``a``
    with these quantize arguments cannot join a batch."""
    dtype = kwargs.get("dtype")
    if dtype not in INT_DTYPES or set(kwargs) - {"dtype", "scheme", "granularity",
                                                 "narrow_range"}:
        return None
    if a.ndim != 2 or a.dtype != np.float32 or not a.flags.c_contiguous or not a.size \
            or a.size >= BATCH_BELOW:
        return None
    g = as_granularity(kwargs.get("granularity", "tensor"))
    if isinstance(g, PerChannel) and g.axis in (0, -2):
        layout = ("rows",)
    elif isinstance(g, PerGroup) and g.axis in (1, -1):
        layout = ("groups", g.size)
    else:
        return None
    if a.shape[1] * INT_DTYPES[dtype].bits % 8:  # (packed codes must split on bytes)
        return None
    return (dtype, kwargs.get("scheme", "asymmetric"), bool(kwargs.get("narrow_range", False)),
            layout, a.shape[1])


def quantize_batched(tensors, kwargs):
    """``{name: QTensor}`` for ``tensors`` (``[(name, 2-D float32 array)]`` sharing one
    ``row_wise`` key), each as ``fq.quantize(a, **kwargs)`` would give it."""
    out = {}
    batch, rows = [], 0
    cols = tensors[0][1].shape[1]
    limit = max(BATCH_ELEMENTS // cols, 1)
    buffer = np.empty((min(limit, sum(a.shape[0] for _, a in tensors)), cols), np.float32)
    for name, a in tensors:
        if batch and rows + a.shape[0] > limit:
            out.update(_one_batch(batch, rows, kwargs, buffer))
            batch, rows = [], 0
        batch.append((name, a))
        rows += a.shape[0]
    if batch:
        out.update(_one_batch(batch, rows, kwargs, buffer))
    return out


def _one_batch(batch, rows, kwargs, buffer):
    """Quantize the tensors of ``batch`` (``rows`` rows in all) through ``buffer``
    (allocated once, reused by every batch; a tensor alone is quantized in place)."""
    if len(batch) == 1:
        name, a = batch[0]
        return {name: quantize(a, **kwargs)}
    cols = batch[0][1].shape[1]
    buffer = buffer[:rows]
    np.concatenate([a for _, a in batch], axis=0, out=buffer)
    granularity = as_granularity(kwargs.get("granularity"))
    whole = quantize(buffer, **{**kwargs, "granularity": _whole(granularity)})
    bits = INT_DTYPES[whole.dtype].bits
    out, r0 = {}, 0
    for name, a in batch:
        r1 = r0 + a.shape[0]
        if bits < 8:
            data = whole.data[r0 * cols * bits // 8:r1 * cols * bits // 8]
        else:
            data = whole.data[r0:r1]
        zp = None if whole.zero_point is None else whole.zero_point[r0:r1]
        out[name] = QTensor(data, whole.dtype, whole.scale[r0:r1], zp, a.shape, granularity)
        r0 = r1
    return out


def _whole(granularity):
    """The granularity of the stacked buffer: the same blocks, on its 2-D shape."""
    if isinstance(granularity, PerChannel):
        return PerChannel(0)
    return PerGroup(granularity.size, axis=-1)
