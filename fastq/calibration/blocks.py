"""A batch as the calibration kernels take it: float32 views over the blocks of a
granularity, each with the parameter blocks its kernel blocks belong to.

The blocks are those of linear quantization (``fastq.core.granularity``): the batch's
canonical 3-D view, or past three blocked dimensions one view per index of the leading
axes.  A per-tensor batch has one block, which a kernel parallel over blocks would walk
on one thread; it is viewed instead as ``chunks`` rows, each a block of its own, whose
results the caller folds into the one parameter block.
"""
import math

import numpy as np

from ..core import checks
from ..core.granularity import PerTensor, as_granularity
from ..ops import to_host
from ..ops.linear import lead_dims, to_float32, view3

# A per-tensor batch of at least this many elements is walked as one row per thread chunk
# (about 32K elements each, 64 at most): the per-block kernels then share it out.
SPLIT_ABOVE = 1 << 16
MAX_SPLIT = 64


def as_batch(batch, name="batch"):
    """A native float32 C-contiguous host array of ``batch`` (float16/bfloat16 exactly,
    float64 rounded once, as ``fq.quantize`` takes its input)."""
    a = checks.as_float_array(to_host(batch), name)
    if not (a.dtype == np.float32 and a.dtype.isnative and a.flags.c_contiguous):
        a = to_float32(a)
    return a


def parameter_grid(shape, granularity):
    """The full-rank grid of parameter blocks, ``ceil(d / b)`` per dimension."""
    blocks = granularity.blocks(shape)
    return tuple(-(-d // max(b, 1)) for d, b in zip(shape, blocks))


def kernel_views(x, granularity):
    """``(x3, blocks3, index)`` to run the per-block kernels on: ``index`` the parameter
    block (flat, C order of ``parameter_grid``) of each of the view's blocks, or None
    when they are the parameter blocks in order."""
    granularity = as_granularity(granularity)
    if not x.size:
        return
    if isinstance(granularity, PerTensor):
        flat = x.reshape(x.size)
        chunks = min(MAX_SPLIT, x.size // (SPLIT_ABOVE // 2)) if x.size >= SPLIT_ABOVE else 1
        step = x.size // chunks
        yield flat[:chunks * step].reshape(1, chunks, step), (1, 1, step), \
            np.zeros(chunks, np.int64)
        if chunks * step < x.size:
            rest = flat[chunks * step:]
            yield rest.reshape(1, 1, rest.size), (1, 1, rest.size), np.zeros(1, np.int64)
        return
    shape = x.shape
    blocks = granularity.blocks(shape)
    lead = lead_dims(shape, blocks)
    shape3, blocks3 = view3(shape[lead:], blocks[lead:])
    if not lead:
        yield x.reshape(shape3), blocks3, None
        return
    grid = parameter_grid(shape, granularity)
    numbers = np.arange(math.prod(grid)).reshape(grid)
    for index in np.ndindex(*shape[:lead]):
        cell = tuple(i // b for i, b in zip(index, blocks))
        yield x[index].reshape(shape3), blocks3, numbers[cell].reshape(-1)


def view_blocks(x3, blocks3):
    """How many blocks the kernels see in a view."""
    return math.prod(-(-d // b) for d, b in zip(x3.shape, blocks3))
