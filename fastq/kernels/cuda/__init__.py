"""CUDA backend (numba.cuda): twin kernel modules of ``fastq.kernels.cpu``.

Imported on the first GPU use only (``fastq.backend.CUDA.kernels(...)``), never by
``import fastq``.  Every module here keeps the names and signatures of its CPU twin and
the same arithmetic, so results are bit-identical across backends.

Kernels use a grid-stride loop; ``launch(n)`` gives ``(blocks, threads)`` for ``n``
work items: 256 threads per block and at most ``MAX_BLOCKS`` blocks on a GPU, tiny
launches under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which runs one
Python thread per CUDA thread.
"""
from numba import config

SIMULATOR = bool(config.ENABLE_CUDASIM)
THREADS = 8 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 4096


def launch(n, threads=THREADS):
    """``(blocks, threads)`` of a 1-D grid-stride launch over ``n`` items."""
    return max(1, min(-(-int(n) // threads), MAX_BLOCKS)), threads


def run_over(kernel, n, *args):
    """Launch the grid-stride ``kernel(*args)`` over ``n`` items (none when ``n`` is 0)."""
    if n:
        blocks, threads = launch(n)
        kernel[blocks, threads](*args)


def launch2(nx, ny):
    """``(blocks, threads)`` of a 2-D grid-stride launch: x over ``nx`` columns, y rows."""
    tx, ty = (4, 2) if SIMULATOR else (64, 4)
    bx = max(1, min(-(-int(nx) // tx), MAX_BLOCKS))
    by = max(1, min(-(-int(ny) // ty), 2 if SIMULATOR else 16384, max(1, 8 * MAX_BLOCKS // bx)))
    return (bx, by), (tx, ty)
