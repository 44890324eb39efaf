"""Linear quantization kernels (CPU) over the canonical blocked view.

Backend interface (the CUDA twin ``fastq.kernels.cuda.quant`` keeps these names):

* ``minmax(x3, blocks, out_min, out_max) -> (has_nan, has_inf)``: per block of the
  float32 view ``x3`` of shape ``(P, K, Q)`` with ``blocks = (bp, bk, bq)``, the min and
  max of the finite values and 0 (every range contains 0), into float32 arrays of the
  grid shape ``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))`` (in ``fastq.kernels.cpu.linear.ranges``).
* ``quantize(x3, blocks, scale3, zero3, qmin, qmax, bits, out) -> has_nan``:
  ``clip(rint(x / s) + z, qmin, qmax)`` with a true float32 division and round-half-even;
  NaN codes as ``z``.  ``out`` is the codes ``(P, K, Q)`` for 8/16 bits, or for 4/2 bits
  the packed bytes (1-D, ``ceil(n * bits / 8)``, ``fastq.kernels.cpu.pack`` layout), packed in
  the same pass from a block of codes still in cache.
* ``fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3) -> has_nan``: the same, then
  ``(q - z) * s`` in float32, written as float32 (no code array).
* ``dequantize(codes3, blocks, scale3, zero3, out3)``: ``(q - z) * s`` in float32.
* ``quantize_dynamic(...)`` (CPU only): dynamic quantization with its parameters in one
  call, per tensor or where each row (block row) of the view holds whole groups.

``scale3`` is float32 and ``zero3`` float32 holding integers, both of the grid shape.
Rows ``(p, k)`` are contiguous runs of Q elements; work is split over rows (quantize)
or over block rows (minmax), so the input is read in memory order whatever the axis.
"""
import math

import numpy as np
from numba import njit, prange

from ...runtime.threads import parallel_region, region_threads
from ...core.flags import INF, NAN
from ...core.layout import MAX_CHUNKS, chunk_count
from .parallel import AHEAD, STREAM_ABOVE, entry_point, streams
from .word import (FP_NEAREST_EVEN, finish_stream, local_block, prefetch_span, stream_out,
                    swap_fp_control, unmanaged)
from .linear.codes import PIECE
from .linear.rowcalls import RowsCall  # (the row kernels' calls: see there)
from .linear.ranges import minmax  # noqa: F401  (the backend interface: see fastq.kernels.cpu.linear.ranges)
from .linear.rows import ROW, unsigned_codes
from .linear.tensor import TENSOR_PARALLEL_FROM
from .linear.tensor import TensorCall  # noqa: F401  (static per tensor: see fastq.kernels.cpu.linear.tensor)
from .linear.tensor import DynamicTensorCall, quantize_tensor_dynamic  # noqa: F401  (per tensor: see there)


@njit(cache=True, nogil=True)
def _dequantize_rows(c3, bp, bk, bq, scale3, zero3, r0, r1, out3, stream):
    """``(q - z) * s`` for rows ``r0..r1``, in pieces as ``quantize_rows``."""
    c3, scale3, zero3, out3 = unmanaged(c3), unmanaged(scale3), unmanaged(zero3), \
        unmanaged(out3)
    K, Q = c3.shape[1], c3.shape[2]
    flat = c3.reshape(c3.size)
    step = PIECE if bq == 1 else min(bq, PIECE)
    buf = local_block(out3, PIECE)
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (no flushing to zero)
    p, k = r0 // K, r0 % K
    for r in range(r0, r1):
        if k == K:
            p, k = p + 1, 0
        row, out = c3[p, k], out3[p, k]
        pb, kb = p if bp == 1 else p // bp, k if bk == 1 else k // bk
        srow, zrow = scale3[pb, kb], zero3[pb, kb]
        for g in range(srow.size if bq > 1 else 1):
            lo = g * bq if bq > 1 else 0
            hi = min(lo + bq, Q) if bq > 1 else Q
            s, z = srow[g], zrow[g]
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                prefetch_span(flat, r * Q + start + AHEAD, step)
                cs, piece = row[start:stop], out[start:stop]
                os_ = buf[:cs.size] if stream else piece
                if bq == 1:
                    ss, zs = srow[start:stop], zrow[start:stop]
                    for j in range(cs.size):
                        os_[j] = (np.float32(cs[j]) - zs[j]) * ss[j]
                else:
                    for j in range(cs.size):
                        os_[j] = (np.float32(cs[j]) - z) * s
                if stream:
                    stream_out(piece, os_)
        k += 1
    finish_stream(stream)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _dequantize_parallel(c3, bp, bk, bq, scale3, zero3, out3, nchunks, stream):
    rows = c3.shape[0] * c3.shape[1]
    for c in prange(nchunks):
        _dequantize_rows(c3, bp, bk, bq, scale3, zero3,
                         c * rows // nchunks, (c + 1) * rows // nchunks, out3, stream)


def _split(x3):
    """Rows of a (P, K, Q) view, and how many chunks to give ``prange`` (0: serial)."""
    rows = x3.shape[0] * x3.shape[1]
    return rows, chunk_count(rows, x3.size)


def _as_rows(a3, blocks):
    """A single long row under one parameter (per-tensor) as ``(1, rows, cut)`` plus tail."""
    n, cut = a3.size, ROW
    head = n - n % cut
    flat = a3.reshape(-1)
    return flat[:head].reshape(1, head // cut, cut), flat[head:].reshape(1, 1, -1), \
        (1, head // cut, cut), (1, 1, max(n - head, 1))


def _kernel_outputs(out, bits):
    """``out`` as the kernels take it, ``(out3, packed)``: the codes (or fake values) in
    x's view, or for 4/2 bits the packed bytes; the other one empty.  Signed codes go
    through their unsigned view (``unsigned_codes``)."""
    if bits < 8:
        return np.empty((0, 0, 0), np.uint8), out
    return unsigned_codes(out), np.empty(0, np.uint8)


def cut_for_threads(shape3, blocks3):
    """Whether the view ``shape3`` is one row under one parameter (per tensor) long
    enough to be cut into rows for the threads (``TENSOR_PARALLEL_FROM``, as the
    prepared calls of ``fastq.kernels.cpu.linear.tensor``); a shorter one runs whole,
    in this thread."""
    P, K, Q = shape3
    return P * K == 1 and Q >= TENSOR_PARALLEL_FROM and blocks3[2] == Q


def _long_row(a3, blocks):
    return cut_for_threads(a3.shape, blocks)


def _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, bits, out, check):
    """Dispatch: a scale per column or not, serial or chunked; a long single row
    (per-tensor) is cut into rows.  A float32 ``out`` means fake quantization.  Returns
    the flags of ``quantize_rows``."""
    qmin, qmax = np.float32(qmin), np.float32(qmax)
    # (one compiled type: the by-rows path writes the parameters; small arrays)
    scale3 = scale3 if scale3.flags.writeable else scale3.copy()
    zero3 = zero3 if zero3.flags.writeable else zero3.copy()
    packed = bits < 8
    out3, packed_out = _kernel_outputs(out, bits)
    parts = [(x3, out3, blocks, 0)]
    if _long_row(x3, blocks):  # cut rows of 2**14 elements: whole bytes when packed
        x_head, x_tail, b_head, b_tail = _as_rows(x3, blocks)
        if packed:
            parts = [(x_head, out3, b_head, 0), (x_tail, out3, b_tail, x_head.size)]
        else:
            o_head, o_tail, _, _ = _as_rows(out3, blocks)
            parts = [(x_head, o_head, b_head, 0), (x_tail, o_tail, b_tail, 0)]
    flags, stream = 0, streams(x3, out)
    zero_free = not zero3.any()
    for x, o, part_blocks, base in parts:
        if x.size:  # (given parameters: not fused)
            flags |= RowsCall(x.shape, part_blocks, bits, qmin, qmax, stream,
                              fused=False)._run(x, scale3, zero3, o, packed_out, check,
                                                zero_free, base)
    return flags


def quantize(x3, blocks, scale3, zero3, qmin, qmax, bits, out, nan_free=False):
    """See the module docstring.  Returns whether a NaN was met (``nan_free``: the caller
    knows there is none, and the kernel does not look)."""
    return bool(_quantize_any(x3, blocks, scale3, zero3, qmin, qmax, bits, out,
                              not nan_free) & NAN)


def fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3, nan_free=False):
    """See the module docstring and ``quantize``."""
    return bool(_quantize_any(x3, blocks, scale3, zero3, qmin, qmax, 8, out3,
                              not nan_free) & NAN)


def quantize_dynamic(x3, blocks, scale3, zero3, qmin, qmax, bits, out, symmetric, ignore,
                     fake=False):
    """Dynamic quantize (``fake``: fake-quantize) with its parameters in one call: per
    tensor (one group), its range, scale and zero point, then its codes, with no return
    to Python between the passes; over a view of two or more rows each one parameter
    group (blocks ``(1, 1, Q)``), or of block rows with a group per column
    (``(1, bk, 1)``) that fit in cache, in one pass: per row (block row) its ranges,
    parameters, then its codes, from cache.  Scales and zero points are written to
    ``scale3``, ``zero3``, as ``fastq.ops.linear.qparams_from_range`` computes them.
    Returns ``(has_nan, has_inf)``; groups with either are coded only with ``ignore``.
    (CPU only: the dispatcher runs the range and quantize passes elsewhere.)"""
    bits, symmetric, ignore = 8 if fake else bits, bool(symmetric), bool(ignore)
    if scale3.size == 1:
        flags = quantize_tensor_dynamic(x3.reshape(x3.size), scale3, zero3, qmin, qmax, bits,
                                        out.reshape(out.size), symmetric, ignore)
    else:  # (laid out for this call: a cached plan keeps its own RowsCall)
        flags = RowsCall(x3.shape, tuple(blocks), bits, qmin, qmax, streams(x3, out),
                         symmetric=symmetric, ignore=ignore).run(x3, scale3, zero3, out)
    return bool(flags & NAN), bool(flags & INF)


# Dequantization runs in the calling thread below this many elements: a few
# instructions an element, so a region pays only from about 256K on 2 cores (median per
# call, threads against the calling thread: 8.9 against 7.2 us at 64K, 20.3 against
# 18.2 us at 128K, 30.8 against 30.5 us at 256K, 67.3 against 96.4 us at 1M;
# ``bench/studies/tensor_chunks.py``).
DEQUANTIZE_PARALLEL_FROM = 1 << 18


def dequantize(codes3, blocks, scale3, zero3, out3):
    """See the module docstring."""
    bp, bk, bq = blocks
    # (one compiled type: a read-only zero point, as a QTensor may hold, would compile the
    # kernels again for it; the parameters are small next to the codes)
    scale3 = scale3 if scale3.flags.writeable else scale3.copy()
    zero3 = zero3 if zero3.flags.writeable else zero3.copy()
    rows, nchunks = _split(codes3)
    stream = streams(codes3, out3)
    if codes3.size < DEQUANTIZE_PARALLEL_FROM:
        _dequantize_rows(codes3, bp, bk, bq, scale3, zero3, 0, rows, out3, False)
    elif _long_row(codes3, blocks):
        c_head, c_tail, b_head, b_tail = _as_rows(codes3, blocks)
        o_head, o_tail, _, _ = _as_rows(out3, blocks)
        with parallel_region():
            _dequantize_parallel(c_head, *b_head, scale3, zero3, o_head,
                                 min(MAX_CHUNKS, b_head[1]), stream)  # (a chunk per row at most)
        _dequantize_rows(c_tail, *b_tail, scale3, zero3, 0, 1, o_tail, False)
    elif nchunks:
        with parallel_region():
            _dequantize_parallel(codes3, bp, bk, bq, scale3, zero3, out3, nchunks, stream)
    else:
        _dequantize_rows(codes3, bp, bk, bq, scale3, zero3, 0, rows, out3, False)


class DequantizeCall:
    """``dequantize`` of one view ``shape3`` with ``blocks3`` and one codes dtype, laid
    out once, as ``dequantize`` runs it (the same rows, so the same values): a serial
    size or one thread for the region (``region_threads``) in this thread, else
    chunks of rows on the threads; a long single row as rows of ``ROW`` and a tail.
    The kernels' compiled code is called directly (found on the first call of each:
    ``fastq.kernels.cpu.parallel.entry_point``): later calls must pass arrays of the
    first call's types, which the caller's plan key fixes.  (CPU only.)"""
    __slots__ = ("blocks3", "rows", "nchunks", "stream", "head", "entries")

    def __init__(self, shape3, blocks3, codes_itemsize):
        size = math.prod(shape3)
        self.blocks3, self.rows, self.head = tuple(blocks3), shape3[0] * shape3[1], None
        self.nchunks = chunk_count(self.rows, size)
        self.stream = size * (codes_itemsize + 4) > STREAM_ABOVE
        if cut_for_threads(shape3, blocks3):  # (as ``dequantize`` cuts it)
            head = size - size % ROW
            self.head = (head, (1, head // ROW, ROW), (1, 1, max(size - head, 1)))
            self.nchunks = min(MAX_CHUNKS, head // ROW)  # (a chunk per row at most)
        if size < DEQUANTIZE_PARALLEL_FROM:
            self.nchunks = 0
        self.entries = [None, None]  # the compiled rows kernel, and the parallel one

    def __call__(self, codes3, scale3, zero3, out3):
        if self.head is None:
            self._rows(codes3, *self.blocks3, scale3, zero3, out3, self.rows, self.nchunks)
            return
        head, shape, tail = self.head  # (one row: per tensor, its blocks are its rows)
        codes, out = codes3.reshape(codes3.size), out3.reshape(out3.size)
        self._rows(codes[:head].reshape(shape), 1, shape[1], ROW, scale3, zero3,
                   out[:head].reshape(shape), shape[1], self.nchunks)
        if head < codes.size:
            self._rows(codes[head:].reshape(tail), 1, 1, tail[2], scale3, zero3,
                       out[head:].reshape(tail), 1, 0)

    def _rows(self, c3, bp, bk, bq, scale3, zero3, out3, rows, nchunks):
        """The ``rows`` rows of ``c3`` in ``nchunks`` chunks on the threads (0, or one
        thread for the region: all of them in this thread)."""
        if not nchunks or region_threads() == 1:
            args = (c3, bp, bk, bq, scale3, zero3, 0, rows, out3, self.stream and nchunks > 0)
            entry = self.entries[0]
            if entry is None:
                entry = self.entries[0] = entry_point(_dequantize_rows, *args)
            entry(*args)
            return
        args = (c3, bp, bk, bq, scale3, zero3, out3, nchunks, self.stream)
        entry = self.entries[1]
        if entry is None:
            entry = self.entries[1] = entry_point(_dequantize_parallel, *args)
        with parallel_region():
            entry(*args)

