"""The block step that every cast loop of ``fastq.kernels.cpu.floatbits`` shares (CPU).

Streaming, the input goes in blocks of ``BLOCK`` elements, each prefetched ahead, coded
into a block in cache (``local_block``) and sent on past the caches with non-temporal
stores (``stream_out``).  Otherwise the whole slice is one block, written straight to the
output: a loop that checks its block for infs and NaNs after every ``BLOCK`` elements
(a horizontal reduction and a branch on the loop's critical path) ran at half the
speed of one that checks once (docs/design.md, "One block per slice").  Inlined: the
loops compile as if written out."""
from numba import njit

from ..parallel import BLOCK
from ..word import prefetch_ahead, stream_out


@njit(cache=True, nogil=True, inline="always")
def block_step(n, stream):
    """Elements per block of a slice of ``n``: ``BLOCK`` when streaming, else all."""
    return BLOCK if stream else max(n, 1)


@njit(cache=True, nogil=True, inline="always")
def block_views(src, dst, buf, start, stream, step=BLOCK):
    """``(src_b, out_b, dst_b)`` for the block of ``step`` elements from ``start``
    (``block_step``): the source's and the output's views, and where the loop writes
    (``buf``'s start when ``stream``, else ``out_b``); the input four ``BLOCK`` ahead is
    prefetched."""
    prefetch_ahead(src, start, BLOCK)
    src_b, out_b = src[start:start + step], dst[start:start + step]
    return src_b, out_b, buf[:out_b.size] if stream else out_b


@njit(cache=True, nogil=True, inline="always")
def block_written(out_b, dst_b, stream):
    """The block's values to the output: streamed from ``dst_b`` when ``stream`` (else
    the loop wrote ``out_b`` itself)."""
    if stream:
        stream_out(out_b, dst_b)
