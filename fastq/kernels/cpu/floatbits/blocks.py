"""The block step that every cast loop of ``fastq.kernels.cpu.floatbits`` shares (CPU):
the input in blocks of ``BLOCK`` elements, each prefetched ahead and written straight to
the output, or when streaming to a block in cache (``local_block``) sent on past the
caches with non-temporal stores (``stream_out``).  Inlined: the loops compile as if
written out."""
from numba import njit

from ..parallel import BLOCK
from ..word import prefetch_ahead, stream_out


@njit(cache=True, nogil=True, inline="always")
def block_views(src, dst, buf, start, stream):
    """``(src_b, out_b, dst_b)`` for the block from ``start``: the source's and the
    output's views, and where the loop writes (``buf``'s start when ``stream``, else
    ``out_b``); the block four blocks ahead is prefetched."""
    prefetch_ahead(src, start, BLOCK)
    src_b, out_b = src[start:start + BLOCK], dst[start:start + BLOCK]
    return src_b, out_b, buf[:out_b.size] if stream else out_b


@njit(cache=True, nogil=True, inline="always")
def block_written(out_b, dst_b, stream):
    """The block's values to the output: streamed from ``dst_b`` when ``stream`` (else
    the loop wrote ``out_b`` itself)."""
    if stream:
        stream_out(out_b, dst_b)
