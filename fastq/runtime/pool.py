"""Host output arrays: large ones come from a small pool of buffers already mapped in.

A fresh large array's pages are not mapped until its first write: each page then faults
and the kernel zeroes it, and NumPy marks arrays of 4 MiB or more for transparent huge
pages, whose faults may compact memory first.  glibc's allocator sometimes keeps a freed
large block in its heap (no faults on reuse) and sometimes returns it to the OS,
depending on what else the process allocated in between: in a process that also runs
torch and ONNX Runtime a 16M-element static quantize (16 MB out) alternated between 3 ms
and 25-60 ms, the slow calls being ~520 huge-page faults and 30-60 ms of system time.  So
every output of ``POOLED_FROM`` bytes or more comes from this pool, as ONNX Runtime's
arena recycles its outputs.

An array from ``host_array`` is an ordinary C-contiguous view of a pooled uint8 buffer
(it does not own its data, so ``ndarray.resize`` refuses it).  Buffers start on a 64-byte
cache line: NumPy places a large array 16 bytes past one, where each 64-byte vector
store of a kernel straddles two lines (dequantizing 16M elements to float32 took 2-3x
as long on an AVX-512 machine).  Every view of a buffer, and every view of those,
holds a reference to it, so a buffer is free exactly when
the pool's own references are all that is left: ``host_array`` reads the reference
count (a view made under the lock takes the buffer).  There is no callback when the
last view dies; an object whose ``__del__`` returned the buffer, behind
``__array_interface__``, cost 4.5 of the 10 us a pooled output took.  The pool tracks
at most ``POOL_BUFFERS`` buffers, in use or free, and at most ``POOL_BYTES`` bytes of
free ones, forgetting the oldest (a forgotten buffer in use is freed by NumPy with
its last view).  Buffer sizes are rounded up by at most 1/16 (``size_class``), so a
held result wastes little.  ``release()`` empties the pool.
"""
import math
import sys
import threading

import numpy as np

POOLED_FROM = 1 << 20  # bytes: below it, page faults cost less than the pool's few us
POOL_BUFFERS = 4
POOL_BYTES = 1 << 30
LINE = 64  # bytes: every pooled buffer starts on a cache line

# pooled uint8 buffers, oldest first (changed under the lock)
_buffers = []
_lock = threading.Lock()


def _free_at(i):
    """Whether no array uses ``_buffers[i]`` (held by the list alone: always asked this
    way, with no other name for the buffer, so the count compares with ``FREE_REFS``)."""
    return sys.getrefcount(_buffers[i]) == FREE_REFS


_probe = [np.empty(0, np.uint8)]
FREE_REFS = sys.getrefcount(_probe[0])  # (the same expression: the list's reference and
del _probe                              # whatever the call itself counts)


def host_array(shape, dtype):
    """``np.empty(shape, dtype)``, from the pool when it is large."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOLED_FROM:
        return np.empty(shape, dtype)
    size = size_class(nbytes)
    with _lock:  # (the array made here takes the buffer)
        return np.ndarray(shape, dtype, _free_buffer(size))


def _free_buffer(size):
    """A free buffer of ``size`` bytes, a new one if none is free (under the lock)."""
    for i in range(len(_buffers)):
        if _buffers[i].size == size and _free_at(i):
            return _buffers[i]
    _buffers.append(_line_aligned(size))
    _trim()
    return _buffers[-1]


def _line_aligned(size):
    """A new uint8 buffer of ``size`` bytes that starts on a 64-byte cache line.  It is
    made over a memoryview of a larger array, not as a slice of it: NumPy points every
    view of a slice at the array that owns the memory, which would hide the views from
    the buffer's reference count, but stops at a base of another type."""
    raw = np.empty(size + LINE, np.uint8)
    skip = -raw.ctypes.data % LINE
    return np.frombuffer(memoryview(raw)[skip:skip + size], np.uint8)


def _trim():
    """Forget the oldest buffers past ``POOL_BUFFERS``, and the oldest free ones past
    ``POOL_BYTES`` of free bytes; never the newest (about to be handed out)."""
    del _buffers[:max(0, len(_buffers) - POOL_BUFFERS)]
    free = [i for i in range(len(_buffers) - 1) if _free_at(i)]
    spare = sum(_buffers[i].size for i in free) - POOL_BYTES
    drop = set()
    for i in free:
        if spare <= 0:
            break
        spare -= _buffers[i].size
        drop.add(i)
    _buffers[:] = [_buffers[i] for i in range(len(_buffers)) if i not in drop]


def free_buffers():
    """The sizes of the pooled buffers that no array uses now, oldest first."""
    with _lock:
        return [_buffers[i].size for i in range(len(_buffers)) if _free_at(i)]


def size_class(nbytes):
    """The buffer size for ``nbytes``: rounded up to a sixteenth of its power of two (at
    least a 4 KiB page), so requests of nearby sizes share buffers."""
    step = max(4096, 1 << (int(nbytes).bit_length() - 5))
    return -(-nbytes // step) * step


def release():
    """Return every free pooled buffer to the OS (and forget the ones in use)."""
    with _lock:
        del _buffers[:]
