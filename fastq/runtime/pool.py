"""Host output arrays: large ones come from a small pool of buffers already mapped in.

NumPy takes an array of 32 MiB or more straight from the OS (glibc's allocator never
keeps blocks that large in its heap), so the first write to each of its pages faults and
the kernel zeroes the page: on a fresh large output those page faults would otherwise
take longer than the kernel's own work.  ONNX Runtime's arena recycles its output
buffers the same way this pool does.

An array from ``host_array`` is an ordinary C-contiguous ndarray whose ``base`` is a lease
on a pooled buffer (it does not own its data, so ``ndarray.resize`` refuses it).  The
buffer goes back to the pool when the last view of the array is gone; the pool keeps
at most ``POOL_BUFFERS`` free buffers and ``POOL_BYTES`` bytes, dropping the oldest.
``release()`` empties it.
"""
import math
import threading

import numpy as np

POOLED_FROM = 32 << 20  # bytes: smaller arrays come from np.empty (the heap reuses them)
SIZE_STEP = 2 << 20  # buffer sizes are multiples of a huge page
POOL_BUFFERS = 4
POOL_BYTES = 1 << 30

_free = []  # buffers (uint8 arrays) not leased, oldest first; appended to without the lock
_lock = threading.Lock()  # for taking from and trimming ``_free``


class _Lease:
    """Holds a pooled buffer for the arrays made from it (NumPy keeps it as their base)."""
    __slots__ = ("__array_interface__", "_buffer")

    def __init__(self, buffer):
        self._buffer = buffer
        self.__array_interface__ = {"data": (buffer.ctypes.data, False),
                                    "shape": (buffer.size,), "typestr": "|u1", "version": 3}

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
    size = -(-nbytes // SIZE_STEP) * SIZE_STEP
    with _lock:
        buffer = None
        for i, candidate in enumerate(_free):
            if candidate.size == size:
                buffer = _free.pop(i)
                break
        _trim()
    if buffer is None:
        buffer = np.empty(size, np.uint8)
    return np.asarray(_Lease(buffer))[:nbytes].view(dtype).reshape(shape)


def _trim():
    while len(_free) > POOL_BUFFERS or sum(b.size for b in _free) > POOL_BYTES:
        _free.pop(0)


def release():
    """Return every free pooled buffer to the OS."""
    with _lock:
        del _free[:]
