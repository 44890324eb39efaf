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

An array from ``host_array`` is an ordinary C-contiguous ndarray whose ``base`` is a lease
on a pooled buffer (it does not own its data, so ``ndarray.resize`` refuses it).  The
buffer goes back to the pool when the last view of the array is gone; the pool keeps
at most ``POOL_BUFFERS`` free buffers and ``POOL_BYTES`` bytes, dropping the oldest.
Buffer sizes are rounded up by at most 1/16 (``size_class``), so a held result wastes
little.  ``release()`` empties it.
"""
import math
import threading

import numpy as np

POOLED_FROM = 1 << 20  # bytes: below it, page faults cost less than the pool's few us
POOL_BUFFERS = 4
POOL_BYTES = 1 << 30

# buffers not leased, oldest first, as ``(uint8 array, its data address)`` (asking NumPy
# for the address costs 2.6 us); appended to without the lock
_free = []
_lock = threading.Lock()  # for taking from and trimming ``_free``


class _Lease:
    """Holds a pooled buffer for the arrays made from it (NumPy keeps it as their base)."""
    __slots__ = ("__array_interface__", "_buffer")

    def __init__(self, buffer):
        self._buffer = buffer  # (array, address)
        self.__array_interface__ = {"data": (buffer[1], False), "shape": (buffer[0].size,),
                                    "typestr": "|u1", "version": 3}

    def __del__(self):
        try:
            _free.append(self._buffer)  # (atomic; the collector may run this anywhere,
            if _lock.acquire(blocking=False):  # even inside ``host_array``: never wait here)
                try:
                    _trim()
                finally:
                    _lock.release()
        except Exception:  # interpreter shutdown
            pass


def host_array(shape, dtype):
    """``np.empty(shape, dtype)``, from the pool when it is large."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOLED_FROM:
        return np.empty(shape, dtype)
    size = size_class(nbytes)
    with _lock:
        buffer = None
        for i, candidate in enumerate(_free):
            if candidate[0].size == size:
                buffer = _free.pop(i)
                break
        _trim()
    if buffer is None:
        array = np.empty(size, np.uint8)
        buffer = (array, array.ctypes.data)
    return np.asarray(_Lease(buffer))[:nbytes].view(dtype).reshape(shape)


def size_class(nbytes):
    """The buffer size for ``nbytes``: rounded up to a sixteenth of its power of two (at
    least a 4 KiB page), so requests of nearby sizes share buffers."""
    step = max(4096, 1 << (int(nbytes).bit_length() - 5))
    return -(-nbytes // step) * step


def _trim():
    while len(_free) > POOL_BUFFERS or sum(b[0].size for b in _free) > POOL_BYTES:
        _free.pop(0)


def release():
    """Return every free pooled buffer to the OS."""
    with _lock:
        del _free[:]
