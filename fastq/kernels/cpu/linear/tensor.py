"""Static per-tensor quantization with the least Python per call (CPU): ``TensorCall``,
laid out once per input size by the dispatcher's cached plan, and its kernel
``quantize_tensor``.

The Python around a kernel runs with caches cold from the last pass over a large
input, so the general path's checks and layout are a visible share of a fast
quantize; this one runs a fraction of that Python: its kernel rounds and checks the
scale and sets the thread count itself.  Rows start on a 64-byte line of the input and
of the codes (NumPy puts large arrays 16 bytes past one), so the row loops load and
store whole cache lines.
"""
import numpy as np
from numba import njit, prange

from ....runtime import pool
from ....runtime.threads import note_thread_count, parallel_region, region_threads
from ....core.flags import BAD_SCALE
from ..parallel import MAX_CHUNKS, STREAM_ABOVE, entry_point, serial_twin
from ..word import FP_NEAREST_EVEN, address, set_thread_count, swap_fp_control
from .params import scale_zero, tensor_range
from .ranges import row_range
from .rows import (ROW, chunk_rows, code_scratch, quantize_rows, quantize_rows_parallel,
                   unsigned_codes)

LINE = pool.LINE  # bytes: a cache line, as the pool places its buffers
# Constant arguments of the row kernels as the general path passes them (int64, bool):
# a literal 1 or True in a kernel's call would compile another specialization of them
# (Numba types constants as literals), a long compile where these reuse the general
# path's.
ONE, ZERO, YES, NO = np.int64(1), np.int64(0), np.bool_(True), np.bool_(False)
# Per-tensor kernels run in the calling thread below this many elements, later than the
# casts (``SERIAL_BELOW``, 64K): their regions cost more to start (the static kernel
# hands a dozen arrays to each chunk, the dynamic one starts two regions), so the threads
# win only from about 200K elements on 2 cores, and later where another library's
# OpenMP threads still spin after its own calls (``bench/studies/tensor_chunks.py``; the
# numbers are in docs/design.md, "Small calls").
TENSOR_PARALLEL_FROM = 1 << 18


class TensorCall:
    """Static per-tensor quantization of native float32 C-contiguous inputs of one
    ``shape`` (and one set of flags: aligned, writeable) into codes of ``code_dtype``
    (``bits`` 4 or 2: packed bytes): ``call(x, scale, zero) -> (out, flags, s)`` as
    ``quantize_tensor``: the new codes (or packed bytes), the flags and the bits of the
    float32 scale (an int).

    A call that runs on one thread (a serial size, or one thread for the region:
    ``region_threads``) takes the least Python, unless its output streams past the
    caches: one chunk, in this thread, the kernel's compiled code called directly
    (``entry``, found on the first call: ``fastq.kernels.cpu.parallel.entry_point``),
    with no thread count and no parallel region to start.  A serial size takes its
    codes from the output's first byte (no placement on a line: the rows of a small
    input are in cache anyway).  The codes do not depend on the chunks."""
    __slots__ = ("out", "like", "qmin", "qmax", "bits", "nchunks", "stream", "nbytes",
                 "no_scratch", "one_scratch", "entry")

    def __init__(self, shape, code_dtype, qmin, qmax, bits):
        size = int(np.prod(shape))
        self.qmin, self.qmax, self.bits = np.float32(qmin), np.float32(qmax), bits
        self.nchunks, self.nbytes = tensor_chunks(size), -(-size * bits // 8)
        self.stream = size * 4 + self.nbytes > STREAM_ABOVE
        # the output's shape and dtype; an array of its codes' dtype (never written)
        self.out = (shape, np.dtype(code_dtype)) if bits >= 8 else (self.nbytes, np.uint8)
        # (codes of either sign through their unsigned view: one compiled kernel for both)
        self.like = np.empty(0, f"u{np.dtype(code_dtype).itemsize}" if bits >= 8 else np.uint8)
        self.no_scratch = code_scratch(self.nchunks, 8)
        self.one_scratch = code_scratch(1, 8)
        self.entry = None  # the kernel's compiled code, once known

    def __call__(self, x, scale, zero):
        """``scale`` a float (rounded to float32 by the kernel), ``zero`` an int."""
        nthreads = 1 if self.nchunks == 1 else region_threads()
        if nthreads == 1 and not self.stream:  # (in this thread, codes from the first byte)
            scratch = self.one_scratch if self.bits >= 8 else \
                code_scratch(1, self.bits)
            nbytes = self.nbytes if self.nchunks == 1 else self.nbytes + LINE  # (placed)
            raw = np.empty(nbytes, np.uint8) if nbytes < pool.POOLED_FROM else \
                pool.host_array(nbytes, np.uint8)
            args = (x.ravel(), float(scale), float(zero), self.qmin, self.qmax, raw,
                    self.like, self.bits, scratch, False, 1)
            entry = self.entry
            if entry is None:
                entry = self.entry = entry_point(quantize_tensor, *args)
            flags, s, skip = entry(*args)
            if self.nchunks == 1:
                shape, dtype = self.out
                return (raw.view(dtype).reshape(shape) if self.bits >= 8 else raw), flags, s
            return np.ndarray(*self.out, raw, skip), flags, s
        scratch = self.no_scratch if self.bits >= 8 else \
            code_scratch(self.nchunks, self.bits)
        raw = pool.host_array(self.nbytes + LINE, np.uint8)  # (the output, placed by the kernel)
        args = (x.reshape(x.size), float(scale), float(zero), self.qmin, self.qmax, raw,
                self.like, self.bits, scratch, self.stream, nthreads)
        entry = self.entry  # (the same types as the serial call's)
        if entry is None:
            entry = self.entry = entry_point(quantize_tensor, *args)
        flags, s, skip = entry(*args)
        note_thread_count(nthreads)  # (the kernel applied it)
        return np.ndarray(*self.out, raw, skip), flags, s


class DynamicTensorCall:
    """Dynamic per-tensor quantization of native float32 C-contiguous inputs of one
    ``shape`` (and one set of flags: aligned, writeable) into codes of ``code_dtype``
    (``bits`` 4 or 2: packed bytes; ``code_dtype`` float32: fake quantization, with
    ``bits`` 8), ``symmetric`` or not, NaN and inf ignored or not: ``.call(x) -> (data,
    scale3, zero3, flags)`` as ``quantize_tensor_dynamic``, the kernels' compiled code
    called directly (found on the first call of each:
    ``fastq.kernels.cpu.parallel.entry_point``)."""
    __slots__ = ("shape", "code_dtype", "qmin", "qmax", "bits", "nchunks", "nbytes",
                 "stream", "symmetric", "ignore", "unsigned", "codes_like", "scratches",
                 "entries")

    def __init__(self, shape, code_dtype, qmin, qmax, bits, symmetric, ignore):
        size = int(np.prod(shape))
        self.shape, self.code_dtype, self.bits = shape, np.dtype(code_dtype), bits
        self.unsigned = unsigned_codes(np.empty(0, self.code_dtype)).dtype
        self.qmin, self.qmax = np.float32(qmin), np.float32(qmax)
        self.symmetric, self.ignore = bool(symmetric), bool(ignore)
        self.nchunks = tensor_chunks(size)
        self.nbytes = size * self.code_dtype.itemsize if bits >= 8 else -(-size * bits // 8)
        self.stream = self.nchunks > 1 and size * 4 + self.nbytes > STREAM_ABOVE
        self.codes_like = np.empty(0, np.uint8)  # (packed: no code array)
        # 8/16 bits: scratch rows of no elements, for one chunk and for all
        self.scratches = (code_scratch(1, 8), code_scratch(self.nchunks, 8))
        self.entries = [None, None]  # the serial kernel's compiled code, the parallel one's

    def call(self, x):
        parallel = self.nchunks > 1 and region_threads() > 1
        scratch = self.scratches[parallel] if self.bits >= 8 else \
            code_scratch(self.nchunks if parallel else 1, self.bits)
        raw = np.empty(self.nbytes, np.uint8) if self.nbytes < pool.POOLED_FROM else \
            pool.host_array(self.nbytes, np.uint8)
        # (codes of either sign through their unsigned view: one compiled kernel for both)
        codes, packed = (raw.view(self.unsigned), NO_BYTES) if self.bits >= 8 else \
            (self.codes_like, raw)
        scale3, zero3 = np.empty((1, 1, 1), np.float32), np.empty((1, 1, 1), np.float32)
        # (streamed on the threads only: on one thread plain stores were faster, 16M
        # float32 to uint8 in 6.9-8.0 ms against 8.3-9.2 streamed; docs/design.md,
        # "Non-temporal stores past the cache")
        args = (x.reshape(x.size), scale3, zero3, self.qmin, self.qmax, codes, packed,
                self.bits, scratch, self.stream and parallel, self.symmetric, self.ignore)
        entry = self.entries[parallel]
        if entry is None:
            entry = self.entries[parallel] = entry_point(
                _dynamic_parallel if parallel else _dynamic_serial, *args)
        if parallel:
            with parallel_region():
                flags = entry(*args)
        else:
            flags = entry(*args)
        data = raw.view(self.code_dtype).reshape(self.shape) if self.bits >= 8 else raw
        return data, scale3, zero3, flags


def tensor_chunks(size):
    """Chunks of rows for a per-tensor kernel over ``size`` elements (1: serial)."""
    return min(size // ROW, MAX_CHUNKS) if size >= TENSOR_PARALLEL_FROM else 1


@njit(cache=True, nogil=True, inline="always")
def tensor_rows(x, codes, lead, bits):
    """``(end, x3, codes3)``: the flat ``x`` as rows of ``ROW`` elements from ``lead``
    (``line_lead``) to ``end``, and their codes (``codes`` flat; for ``bits`` < 8
    empty)."""
    rows = (x.size - lead) // ROW
    end = lead + rows * ROW
    codes3 = codes[lead:end].reshape(1, rows, ROW) if bits >= 8 else codes.reshape(0, 0, 0)
    return end, x[lead:end].reshape(1, rows, ROW), codes3


@njit(cache=True, nogil=True, inline="always")
def line_lead(x, bits):
    """How many elements of the flat float32 ``x`` come before its first 64-byte line:
    0 if x is not 4-byte aligned, or for ``bits`` < 8 if they would not fill whole
    bytes of packed codes (rows must start on a byte)."""
    misaligned = np.int64(address(x, 0) % np.uintp(LINE))
    lead = min((LINE - misaligned) % LINE // 4, x.size)
    return 0 if misaligned % 4 or (bits < 8 and lead % (8 // bits)) else lead


@njit(cache=True, nogil=True, error_model="numpy")
def quantize_tensor(x, scale, zero, qmin, qmax, raw, like, bits, scratch, stream, nthreads):
    """Static per-tensor quantization of the flat ``x``: the scale rounded to float32
    here, in the default rounding mode; rows from x's first 64-byte line on
    (``line_lead``, ``tensor_rows``), in ``scratch.shape[0]`` chunks (``quantize_rows_parallel`` on
    ``nthreads`` threads; one chunk: this thread), and the elements before and after
    them.  The codes (``like``'s dtype; ``bits`` 4 or 2: packed bytes) go to ``raw``
    from byte ``skip`` on, chosen in its first line so that the rows' codes start on
    lines too (``raw`` of just the codes' bytes, no line to spare: ``skip`` 0).  Returns ``(flags, s, skip)``: ``s`` the bits of the float32 scale
    (uint32: a float32 would reach Python as a float), flags ``NAN`` a NaN met,
    ``BAD_SCALE`` ``s`` not finite and > 0 (nothing written)."""
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))
    s = np.float32(scale)
    if not (s > 0 and s < np.inf):
        swap_fp_control(saved)
        return BAD_SCALE, s.view(np.uint32), 0
    lead = line_lead(x, bits)
    nbytes = (x.size * bits + 7) // 8
    skip = 0  # (``raw`` without a line to spare: the codes from its first byte)
    if raw.size >= nbytes + LINE:
        skip = -(np.int64(address(raw, 0) % np.uintp(LINE)) + lead * bits // 8) % LINE
    packed = raw[skip:skip + nbytes] if bits < 8 else raw[:0]
    codes = raw[skip:skip + nbytes].view(like.dtype) if bits >= 8 else like
    scale3, zero3 = np.full((1, 1, 1), s), np.full((1, 1, 1), np.float32(zero))
    end, x3, codes3 = tensor_rows(x, codes, lead, bits)
    rows, row, nchunks = x3.shape[1], x3.shape[2], scratch.shape[0]
    if nchunks > 1:
        set_thread_count(nthreads)
        flags = quantize_rows_parallel(x3, ONE, rows, row, scale3, zero3, qmin, qmax, codes3,
                                       bits, lead, ONE, scratch, packed, stream=stream,
                                       check=YES, fused=NO, symmetric=NO, ignore=NO)
    else:
        flags = quantize_rows(x3, ONE, max(rows, ONE), row, scale3, zero3, qmin, qmax, ZERO,
                              rows, codes3, bits, lead, scratch[0], packed, stream=NO,
                              check=YES, fused=NO, symmetric=NO, ignore=NO)
    flags |= code_ends(x, lead, end, scale3, zero3, qmin, qmax, codes, codes3, bits,
                       scratch[0], packed, check=YES, symmetric=NO, ignore=NO)
    swap_fp_control(saved)
    return flags, s.view(np.uint32), skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def code_ends(x, lead, end, scale3, zero3, qmin, qmax, codes, codes3, bits, scratch, packed,
              check, symmetric, ignore):
    """The codes of the elements of the flat ``x`` before ``lead`` and from ``end`` on
    (not in a row), as ``quantize_rows`` with parameters already in ``scale3``/``zero3``;
    ``codes`` flat (8/16 bits), else ``codes3`` (empty) and ``packed``."""
    flags = 0
    for a, b in ((0, lead), (end, x.size)):
        if b > a:
            flags |= quantize_rows(x[a:b].reshape(1, 1, b - a), ONE, ONE, b - a, scale3,
                                   zero3, qmin, qmax, ZERO, ONE,
                                   codes[a:b].reshape(1, 1, b - a) if bits >= 8 else codes3,
                                   bits, a, scratch, packed, stream=NO, check=check, fused=NO,
                                   symmetric=symmetric, ignore=ignore)
    return flags


def quantize_tensor_dynamic(x, scale3, zero3, qmin, qmax, bits, out, symmetric, ignore):
    """Dynamic per-tensor quantization of the flat float32 ``x`` in one call: its range,
    scale and zero point (written to ``scale3``/``zero3``, shape ``(1, 1, 1)``), then its
    codes into the flat ``out`` (codes, fake values, or for ``bits`` 4/2 the packed
    bytes); rows from x's first 64-byte line on and the elements before and after them.
    Returns the flags of the range (``fastq.core.flags``: a NaN or inf without
    ``ignore``: no codes).  One chunk, or one thread for the region: in this thread
    (the same bits)."""
    nchunks = tensor_chunks(x.size)
    scratch = code_scratch(nchunks, bits)
    codes, packed = (unsigned_codes(out), NO_BYTES) if bits >= 8 else (NO_BYTES, out)
    qmin, qmax = np.float32(qmin), np.float32(qmax)
    if nchunks == 1 or region_threads() == 1:  # (one thread: plain stores, as below)
        return _dynamic_serial(x, scale3, zero3, qmin, qmax, codes, packed, bits, scratch,
                               False, symmetric, ignore)
    stream = x.nbytes + out.nbytes > STREAM_ABOVE
    with parallel_region():
        return _dynamic_parallel(x, scale3, zero3, qmin, qmax, codes, packed, bits, scratch,
                                 stream, symmetric, ignore)


NO_BYTES = np.empty(0, np.uint8)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _dynamic_parallel(x, scale3, zero3, qmin, qmax, codes, packed, bits, scratch, stream,
                      symmetric, ignore):
    """The range of the flat ``x`` (its rows in ``nchunks`` parts, the rest here), its
    scale and zero point (``scale_zero``), then its codes as ``quantize_rows_parallel``
    (into ``codes``, or ``packed``); returns the flags of the range (a NaN or inf
    without ``ignore``: no codes).  The parameters are computed in the default
    floating-point environment, whatever the caller's (the ranges are integer maxima,
    the row kernels set their own)."""
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (this thread's part)
    nchunks, lead = scratch.shape[0], line_lead(x, bits)
    end, x3, codes3 = tensor_rows(x, codes, lead, bits)
    rows = x3.shape[1]
    flags, lo, hi = tensor_range(x[lead:end], x[end:], nchunks, ignore)
    lead_flags, lead_lo, lead_hi = row_range(x[:lead], ignore)
    flags, lo, hi = flags | lead_flags, min(lo, lead_lo), max(hi, lead_hi)
    if flags and not ignore:  # (the caller raises)
        swap_fp_control(saved)
        return flags
    scale3[0, 0, 0], zero3[0, 0, 0] = scale_zero(lo, hi, symmetric, qmin, qmax)
    check = flags != 0  # (a NaN, or an inf: its quotient by the reciprocal is NaN, see codes)
    for c in prange(nchunks):  # (their flags: those of the range pass)
        r0, r1 = chunk_rows(rows, c, nchunks, 1)
        quantize_rows(x3, ONE, max(rows, ONE), x3.shape[2], scale3, zero3, qmin, qmax, r0, r1,
                      codes3, bits, lead, scratch[c], packed, stream=stream, check=check,
                      fused=NO, symmetric=symmetric, ignore=ignore)
    code_ends(x, lead, end, scale3, zero3, qmin, qmax, codes, codes3, bits, scratch[0],
              packed, check=check, symmetric=symmetric, ignore=ignore)
    swap_fp_control(saved)
    return flags


_dynamic_serial = serial_twin(_dynamic_parallel)
