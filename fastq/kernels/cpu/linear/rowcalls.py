"""The row kernels' calls over a view (CPU), for ``fastq.kernels.cpu.quant``:
``RowsCall``, which lays out the rows (or block rows) of one view once (which kernel:
a parameter group per row or per run along a row, per column of each block row, or
per column of one block row; serial or chunked; the chunks' alignment on packed bytes;
the scratch; streaming), and the per-column kernel of one block row that computes its
own parameters, ``_quantize_channels_parallel``.

Quantization with given parameters and dynamic quantization with the parameters in the
same call (``fused``: each group's range, parameters, then codes) both run through it.
The general path lays a call out each time and runs it through Numba's dispatchers; a
cached plan keeps one ``RowsCall`` for its input's shape (dynamic quantization of
several groups), whose repeated calls run the kernels' compiled code directly
(``entry_point``) with no layout in Python.  Both run the same kernels on the same
chunks, so they give the same bits.
"""
import math

import numpy as np
from numba import njit, prange

from ....core.flags import NAN
from ....core.layout import SERIAL_BELOW, chunk_count
from ....runtime import pool
from ....runtime.threads import parallel_region, region_threads
from ..parallel import STREAM_ABOVE, entry_point, serial_twin
from ..word import FP_NEAREST_EVEN, swap_fp_control
from .params import column_params
from .ranges import NO_SIGNED, column_max
from .rows import (byte_align, chunk_rows, code_scratch, quantize_columns,
                   quantize_columns_parallel, quantize_rows, quantize_rows_parallel,
                   unsigned_codes)
from .tensor import NO, ONE, ZERO

# What a view's groups are, as the kernels walk them
CHANNELS = 0  # a group per column of one block row (PerChannel on the last axis)
ROWS = 1  # a group per row, or per run along a row (PerChannel on another axis, PerGroup)
COLUMNS = 2  # a group per column of each block row (PerGroup along the first axis)
NO_CODES = np.empty((0, 0, 0), np.uint8)  # (packed codes: no code array; never written)
NO_BYTES = np.empty(0, np.uint8)  # (codes of 8 bits or more: no packed bytes)


class RowsCall:
    """Quantization of the float32 view ``shape3`` with ``blocks3`` by the row kernels
    into codes of ``bits`` in ``[qmin, qmax]`` (4 or 2: packed bytes; fake quantization:
    float32 values), its output streamed past the caches or not (``stream``): with
    given parameters, or ``fused`` (dynamic, each row or block row whole groups: see
    ``quantize_dynamic``), ``symmetric`` or not, NaN and inf ``ignore``d or not.
    ``run(x3, scale3, zero3, out) -> flags`` writes the codes (fused: the parameters
    first).  A call made by ``planned`` keeps the kernels' compiled code (found on the
    first run of each: later runs must pass arrays of the first run's types, which the
    caller's plan key fixes), and its ``call(x)`` makes the outputs too."""
    __slots__ = ("shape", "shape3", "blocks3", "grid", "code_dtype", "unsigned", "nbytes",
                 "bits", "qmin", "qmax", "fused", "symmetric", "ignore", "zero_free", "kind",
                 "rows", "nchunks", "align", "serial", "stream", "scratch", "entries")

    def __init__(self, shape3, blocks3, bits, qmin, qmax, stream, fused=True,
                 symmetric=False, ignore=False):
        (P, K, Q), (bp, bk, bq) = shape3, blocks3
        size = P * K * Q
        self.shape3, self.blocks3 = shape3, (bp, bk, bq)
        self.bits, self.qmin, self.qmax = bits, np.float32(qmin), np.float32(qmax)
        self.fused, self.symmetric, self.ignore = bool(fused), bool(symmetric), bool(ignore)
        self.stream = bool(stream)
        self.zero_free = self.symmetric and qmin < 0  # (fused: every zero point 0)
        self.rows, self.align = P * K, byte_align(Q, bits)
        self.nchunks = chunk_count(self.rows, size)
        self.serial = size < SERIAL_BELOW  # (CHANNELS: in this thread)
        if fused and P == 1 and (bk, bq) == (K, 1):
            self.kind, self.nchunks = CHANNELS, max(self.nchunks, 1)
        elif bq == 1:  # (fused: chunks of whole block rows, each a group per column)
            self.kind = COLUMNS
            self.align = math.lcm(self.align, bk) if fused else self.align
        else:
            self.kind = ROWS
        self.scratch = code_scratch(self.nchunks, 8)  # (8/16 bits: rows of no elements)
        self.entries = None  # (planned: the serial kernel's compiled code, the parallel's)

    @classmethod
    def planned(cls, shape, code_dtype, shape3, blocks3, bits, qmin, qmax, symmetric, ignore,
                fused=True):
        """The call a cached plan keeps for native float32 C-contiguous inputs of
        ``shape``, coded to ``code_dtype`` (float32: fake quantization, ``bits`` 8;
        streamed as the general path streams them:
        ``fastq.kernels.cpu.parallel.streams`` of the input and the codes), dynamic
        (``fused``) or with given parameters."""
        size, code_dtype = math.prod(shape3), np.dtype(code_dtype)
        nbytes = size * code_dtype.itemsize if bits >= 8 else -(-size * bits // 8)
        call = cls(tuple(shape3), blocks3, bits, qmin, qmax, size * 4 + nbytes > STREAM_ABOVE,
                   fused=fused, symmetric=symmetric, ignore=ignore)
        call.shape, call.code_dtype, call.nbytes = shape, code_dtype, nbytes
        call.unsigned = unsigned_codes(np.empty(0, code_dtype)).dtype
        call.grid = tuple(-(-n // b) for n, b in zip(shape3, blocks3))
        call.entries = [None, None]
        return call

    def call(self, x, scale3=None, zero3=None, zero_free=None):
        """``(data, scale3, zero3, flags)`` of the native float32 C-contiguous ``x`` of
        ``shape``: new codes (packed bytes) or fake values, the parameters, the flags.
        Dynamic (``fused``): new parameters of the grid shape; else the given float32
        ``scale3`` and ``zero3`` of that shape (``zero_free``: every zero point 0), NaN
        looked for."""
        given = scale3 is not None
        if not given:
            scale3, zero3 = np.empty(self.grid, np.float32), np.empty(self.grid, np.float32)
        raw = np.empty(self.nbytes, np.uint8) if self.nbytes < pool.POOLED_FROM else \
            pool.host_array(self.nbytes, np.uint8)
        x3 = x.reshape(self.shape3)
        if self.bits < 8:
            return raw, scale3, zero3, self._run(x3, scale3, zero3, NO_CODES, raw, given,
                                                 zero_free)
        # (codes of either sign through their unsigned view: one compiled kernel for both)
        flags = self._run(x3, scale3, zero3, raw.view(self.unsigned).reshape(self.shape3),
                          NO_BYTES, given, zero_free)
        return raw.view(self.code_dtype).reshape(self.shape), scale3, zero3, flags

    def run(self, x3, scale3, zero3, out):
        """The kernels on ``x3``; ``out`` the codes in x3's view (or fake values), or
        the packed bytes (1-D).  Returns the flags (``fastq.core.flags``: a NaN or inf
        met; without ``ignore``, a group holding either is not coded)."""
        if self.bits < 8:
            return self._run(x3, scale3, zero3, NO_CODES, out)
        return self._run(x3, scale3, zero3, unsigned_codes(out), NO_BYTES)

    def _run(self, x3, scale3, zero3, out3, packed, check=False, zero_free=None, base=0):
        """``run`` with the kernels' two outputs (``out3``: codes, or fake values, in
        x3's view; ``packed``: bytes, the codes' from byte ``base * bits / 8``).  Given
        parameters: ``check`` (look for NaN), ``zero_free`` (every zero point 0)."""
        bp, bk, bq = self.blocks3
        if self.kind == CHANNELS:
            if self.serial or region_threads() == 1:  # (the same bits in one thread)
                return self._kernel(0, _quantize_channels_serial, (
                    x3, scale3, zero3, self.qmin, self.qmax, out3, self.bits, self.align,
                    self._scratch(), packed, 1, self.symmetric, self.ignore))
            nsplit = max(1, min(self.shape3[1] // 4, 4 * region_threads()))
            return self._kernel(1, _quantize_channels_parallel, (
                x3, scale3, zero3, self.qmin, self.qmax, out3, self.bits, self.align,
                self._scratch(), packed, nsplit, self.symmetric, self.ignore))
        common = (self.qmin, self.qmax)
        flags = (check, self.fused, self.symmetric, self.ignore)  # (the kernels' order)
        zero_free = self.zero_free if zero_free is None else zero_free
        if self.kind == COLUMNS:
            if self.nchunks:
                return self._kernel(1, quantize_columns_parallel, (
                    x3, bp, bk, scale3, zero3, *common, out3, self.bits, base, self.align,
                    self._scratch(), packed, *flags, zero_free))
            return self._kernel(0, quantize_columns, (
                x3, bp, bk, scale3, zero3, *common, 0, self.rows, out3, self.bits, base,
                self._scratch(), packed, *flags, zero_free))
        if self.nchunks:
            return self._kernel(1, quantize_rows_parallel, (
                x3, bp, bk, bq, scale3, zero3, *common, out3, self.bits, base, self.align,
                self._scratch(), packed, self.stream, *flags))
        return self._kernel(0, quantize_rows, (
            x3, bp, bk, bq, scale3, zero3, *common, 0, self.rows, out3, self.bits, base,
            self._scratch(), packed, False, *flags))

    def _scratch(self):
        """Codes on their way to be packed, a piece per chunk (``code_scratch``): new
        for 4/2 bits, as runs in other threads may be packing at the same time."""
        return self.scratch if self.bits >= 8 else code_scratch(self.nchunks, self.bits)

    def _kernel(self, parallel, kernel, args):
        """Run ``kernel`` (a parallel one in a region): through its dispatcher, or by
        the compiled code kept for a planned call."""
        if self.entries is None:
            entry = kernel
        else:
            entry = self.entries[parallel]
            if entry is None:
                entry = self.entries[parallel] = entry_point(kernel, *args)
        if not parallel:
            return entry(*args)
        with parallel_region():
            return entry(*args)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _quantize_channels_parallel(x3, scale3, zero3, qmin, qmax, out3, bits, align, scratch,
                                packed, nsplit, symmetric, ignore):
    """The column ranges of the rows of ``x3`` (shape ``(1, K, Q)``) in ``nsplit``
    parts, each column's scale and zero point (``column_params``), then the codes as
    ``quantize_columns_parallel``.  Returns the flags (a NaN or inf without ``ignore``:
    no codes).  The chunks are coded in order: reverse order, to start on rows the
    range pass read last, does not pay."""
    K = x3.shape[1]
    rows = x3[0].view(np.uint32)
    umax = np.zeros((nsplit, x3.shape[2]), np.uint32)
    smax = np.full((nsplit, x3.shape[2]), NO_SIGNED, np.int32)
    for part in prange(nsplit):
        column_max(rows, part * K // nsplit, (part + 1) * K // nsplit, umax[part], smax[part])
    # (the parameters in the default floating-point environment, whatever the caller's)
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))
    flags = column_params(x3[0], umax, smax, scale3[0, 0], zero3[0, 0], symmetric, ignore,
                          qmin, qmax)
    swap_fp_control(saved)
    if flags and not ignore:  # (the caller raises)
        return flags
    nchunks = scratch.shape[0]
    for c in prange(nchunks):  # (their flags: those of the range pass)
        r0, r1 = chunk_rows(K, c, nchunks, align)
        # (ONE, ZERO, NO: as the other callers pass them, where literals would compile
        # another specialization of the per-column kernel)
        quantize_columns(x3, ONE, K, scale3, zero3, qmin, qmax, r0, r1, out3, bits, ZERO,
                         scratch[c], packed, check=flags & NAN != 0, fused=NO,
                         symmetric=symmetric, ignore=ignore, zero_free=symmetric and qmin < 0)
    return flags


_quantize_channels_serial = serial_twin(_quantize_channels_parallel)
