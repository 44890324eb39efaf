"""``fastq.dask.from_npy``: a ``.npy`` file as a Dask array, read chunk by chunk.

``dask.array.from_array`` copies an array-like it is given (``x.copy()``), and a
``np.memmap``'s copy is the whole file in memory; this reads each chunk from its own
memory map when the task runs, so a file larger than memory streams through.
"""
import numpy as np

from .qtensor import require_dask


def _read_block(path, block_info=None):
    """The chunk of the ``.npy`` file ``path`` at the output block's location (a copy:
    the mapping closes with the task)."""
    location = block_info[None]["array-location"]
    mm = np.load(path, mmap_mode="r")
    return np.array(mm[tuple(slice(a, b) for a, b in location)])


def from_npy(path, chunks="auto"):
    """A lazy Dask array of the ``.npy`` file ``path``, each chunk read from a memory
    map of the file when its task runs (nothing is read now but the header).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file (C order; any dtype ``np.load`` maps).
    chunks : as for ``dask.array.from_array``
        ``"auto"``, a shape, or explicit chunks.

    Returns
    -------
    dask.array.Array
    """
    da = require_dask()
    path = str(path)
    mm = np.load(path, mmap_mode="r")
    if mm.dtype.hasobject or np.isfortran(mm) and mm.ndim > 1:
        raise ValueError(f"path must hold a C-order array of plain values, got {path!r}")
    chunks = da.core.normalize_chunks(chunks, mm.shape, dtype=mm.dtype)
    return da.map_blocks(_read_block, path, chunks=chunks, dtype=mm.dtype,
                         meta=np.empty((0,) * mm.ndim, mm.dtype))
