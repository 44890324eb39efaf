"""``DaskQTensor``: a quantized Dask array (lazy codes plus lazy parameters)."""
import math

import numpy as np

from ..core.codes import INT_DTYPES
from ..ops import QTensor
from .layout import ChunkLayout
from .tasks import in_task


def require_dask():
    """``dask.array``, or ImportError naming the extra to install."""
    try:
        import dask.array as da
    except ImportError:
        raise ImportError('fastq.dask needs Dask: pip install "fastq[dask]"') from None
    return da


class DaskQTensor:
    """A lazily quantized Dask array: ``x ~ (codes - zero_point) * scale``.

    Attributes
    ----------
    data : dask.array.Array
        The codes, chunked as the (rechunked) input: int8/uint8/int16/uint16 of
        ``shape``; for 4/2-bit dtypes packed bytes (uint8) per row, first element in the
        low bits, of shape ``shape[:-1] + (ceil(shape[-1] * bits / 8),)``, whose C-order
        bytes are exactly :class:`fastq.QTensor`'s 1-D ``data``.
    scale : dask.array.Array
        float32, the granularity's parameter shape (as :class:`fastq.QTensor`).
    zero_point : dask.array.Array or None
        The code dtype (int8/uint8 for 4/2-bit), ``scale``'s shape; None for signed
        symmetric quantization.
    dtype : str
    shape : tuple
    granularity : fastq granularity
    chunks : tuple
        The chunks of the quantized elements (``data``'s, counted in elements).
    """

    def __init__(self, data, dtype, scale_grid, zero_grid, shape, granularity, chunks):
        self.data, self.dtype = data, dtype
        self.shape, self.granularity, self.chunks = tuple(shape), granularity, tuple(chunks)
        self._layout = ChunkLayout(self.shape, granularity)
        self._scale_grid, self._zero_grid = scale_grid, zero_grid
        param_shape = self._layout.param_shape
        self.scale = scale_grid.reshape(param_shape)
        self.zero_point = None if zero_grid is None else zero_grid.reshape(param_shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def bits(self):
        return INT_DTYPES[self.dtype].bits

    def compute(self, **kwargs):
        """Run the graph (``kwargs`` go to ``dask.compute``: ``scheduler=`` ...);
        returns the :class:`fastq.QTensor` that ``fq.quantize`` gives in memory."""
        import dask
        parts = [self.data, self.scale] + ([] if self.zero_point is None
                                           else [self.zero_point])
        computed = dask.compute(*parts, **kwargs)
        data, scale = computed[0], np.asarray(computed[1], np.float32)
        zero = None if self.zero_point is None else np.asarray(computed[2])
        if self.bits < 8:
            data = np.ascontiguousarray(data).reshape(-1)
        return QTensor(data, self.dtype, scale, zero, self.shape, self.granularity)

    def dequantize(self):
        """``(codes - zero_point) * scale`` in float32: a lazy Dask array of ``shape``,
        chunked as ``chunks``, equal to the in-memory ``fq.dequantize`` bit for bit."""
        return self._per_chunk(_dequantize_chunk, np.float32)

    def codes(self):
        """The unpacked codes, lazily (int8/uint8, int16/uint16), of ``shape``."""
        return self._per_chunk(_codes_chunk, INT_DTYPES[self.dtype].code_dtype)

    def _per_chunk(self, function, dtype):
        da = require_dask()
        arrays = [self.data, self._scale_grid]
        if self._zero_grid is not None:
            arrays.append(self._zero_grid)
        return da.map_blocks(function, *arrays, chunks=self.chunks, dtype=dtype,
                             meta=np.empty((0,) * len(self.shape), dtype),
                             qtype=self.dtype, layout=self._layout)

    @property
    def nbytes(self):
        """Bytes of codes, scale and zero point (as :attr:`fastq.QTensor.nbytes`)."""
        params = math.prod(self._layout.param_shape)
        zero = 0 if self.zero_point is None else params * self.zero_point.dtype.itemsize
        return int(self.data.nbytes + 4 * params + zero)

    def __repr__(self):
        return (f"DaskQTensor(dtype={self.dtype!r}, shape={self.shape}, "
                f"granularity={self.granularity!r}, chunks={self.data.chunksize})")


def _chunk_qtensor(data_b, scale_b, zero_b, qtype, layout, block_info):
    """The in-memory QTensor of one chunk (its granularity restricted to the chunk)."""
    shape = tuple(block_info[None]["chunk-shape"])
    grid = layout.chunk_grid(shape)
    zero = None if zero_b is None else np.asarray(zero_b).reshape(grid)
    data = np.ascontiguousarray(data_b)
    if INT_DTYPES[qtype].bits < 8:
        data = data.reshape(-1)
    return QTensor(data, qtype, np.asarray(scale_b, np.float32).reshape(grid), zero, shape,
                   layout.chunk_granularity(shape))


@in_task
def _dequantize_chunk(data_b, scale_b, zero_b=None, *, qtype, layout, block_info=None):
    return _chunk_qtensor(data_b, scale_b, zero_b, qtype, layout, block_info).dequantize("cpu")


@in_task
def _codes_chunk(data_b, scale_b, zero_b=None, *, qtype, layout, block_info=None):
    return _chunk_qtensor(data_b, scale_b, zero_b, qtype, layout, block_info).codes()
