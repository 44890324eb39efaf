"""How the CPU backend splits 1-D work into chunks for ``prange``, and when its kernels
stream their output past the caches (``word.stream_out``)."""
import types

import numpy as np
from numba import njit

from ...core.layout import ALIGN, BLOCK, MAX_CHUNKS, SERIAL_BELOW, n_chunks  # noqa: F401

CHUNK_MIN = SERIAL_BELOW // 4  # elements of a chunk at least (``n_chunks``)
from ...runtime.threads import parallel_region, region_threads

AHEAD = 4 * BLOCK  # how far ahead of a row loop to prefetch, in elements (8 KB of float32)


@njit(cache=True, nogil=True)
def chunk_bounds(n, c, nchunks):
    """Start and stop of chunk ``c`` of ``nchunks`` over ``n`` elements."""
    step = (n + nchunks - 1) // nchunks
    step = (step + ALIGN - 1) // ALIGN * ALIGN
    start = min(c * step, n)
    return start, min(start + step, n)


@njit(cache=True, nogil=True)
def block_bounds(nblocks, c, nchunks):
    """Start and stop of chunk ``c`` of ``nchunks`` over ``nblocks`` blocks of a block
    format: as even as whole groups of 8 blocks allow.  (``chunk_bounds`` rounds its
    step up to ``ALIGN``, 512 blocks here: with fewer than 512 blocks a chunk, the last
    chunks got none, and Numba's static schedule gave the first thread all the work:
    NF4 of 1M elements, 16K blocks in 64 chunks, ran on one thread.)"""
    groups = (nblocks + 7) // 8
    start = min(c * groups // nchunks * 8, nblocks)
    return start, min((c + 1) * groups // nchunks * 8, nblocks)


def _last_level_cache(default=32 << 20):
    """Bytes of the largest CPU cache (Linux sysfs), else ``default``."""
    try:
        import glob
        sizes = []
        for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
            with open(path) as f:
                text = f.read().strip()
            sizes.append(int(text[:-1]) << {"K": 10, "M": 20}[text[-1]] if text[-1] in "KM"
                         else int(text))
        return max(sizes) if sizes else default
    except (OSError, ValueError):
        return default


# Non-temporal stores pay off only when the data does not fit in the cache anyway:
# below that, the output would have stayed in cache for its next reader and streaming
# it out is slower; above it, skipping the read for ownership makes it faster.  A
# virtual machine reports the whole socket's last-level cache (480 MiB on a 2-vCPU
# Xeon VM, which gets a share of it; there streaming won from 8 MB), so the cache
# counts for at most STREAM_CACHE_CAP (docs/design.md, "Non-temporal stores").
STREAM_CACHE_CAP = 32 << 20
STREAM_ABOVE = min(_last_level_cache(), STREAM_CACHE_CAP)


def streams(*arrays):
    """Whether a kernel over these arrays should stream its output (``stream_out``)."""
    return sum(a.nbytes for a in arrays) > STREAM_ABOVE


def launch(serial, parallel, src, dst, args, stream_alone=True):
    """Run ``serial(*args, False)`` on a small ``src``, else ``parallel(*args, nchunks,
    stream)`` on the threads, streaming past the caches when ``src`` and ``dst`` are large
    (``serial(*args, stream)`` where the region would have one thread: the same
    elementwise results, without starting a region; with ``stream_alone`` False, one
    thread writes plainly: the casts, whose streaming loop, blocks coded on the stack and
    sent out by non-temporal stores, wins on two threads and loses on one, 16M float32
    -> float16 on one thread 10.4 ms streamed against 5.2 ms plain, docs/design.md,
    "Non-temporal stores past the cache")."""
    n = src.size
    if n < SERIAL_BELOW:
        serial(*args, False)
    elif region_threads() == 1:
        serial(*args, stream_alone and streams(src, dst))
    else:
        with parallel_region():
            parallel(*args, n_chunks(n), streams(src, dst))


def serial_twin(kernel):
    """``kernel`` (a ``parallel=True`` dispatcher) compiled without ``parallel``: its
    ``prange`` loops, inlined ones included, run as ``range`` in the calling thread, for
    inputs too small to pay for waking the threads (on a busy machine a parallel region
    can wait milliseconds for a thread to be scheduled).  One source, two compiled
    versions: Numba names cache files after the function's qualified name, so the twin
    is a copy of the function named ``<name>_serial``, with the same other options."""
    f = kernel.py_func
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                              f.__defaults__, f.__closure__)
    twin.__qualname__, twin.__module__ = f.__qualname__ + "_serial", f.__module__
    twin.__doc__ = f.__doc__
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
    return njit(cache=True, **options)(twin)


def entry_point(kernel, *args):
    """The compiled code of the dispatcher ``kernel`` for the types of ``args``, as a
    callable that takes the same arguments: loaded from the on-disk cache, or compiled,
    as a call through the dispatcher would (``Dispatcher.compile``).  A plan keeps it to
    skip the dispatcher's type resolution on each later call (~40 ns an argument); the
    caller must then pass arguments of those same types (the plan's key fixes them)."""
    return kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))


class SliceCall:
    """One planned 1-D kernel call, at any size: the slice kernel ``serial`` and its
    ``parallel`` version, chosen as ``launch`` chooses them (as ``cast.encode``/``decode``
    pick them), their compiled code called directly: ``call(src, dst, flags)`` with
    ``src`` the flat source values, ``dst`` the flat new target array and ``flags``
    ``src.flags.num``, whose aligned and writeable bits fix the type the code is
    compiled for (found on the first call of each: ``entry_point``).  The kernels take
    the bits ``src_word``/``dst_word`` of both (``with_floats``: the source floats too,
    first), then ``consts``; ``bytes_per_element`` (source and target) decides streaming.
    (CPU only.)"""
    __slots__ = ("serial", "parallel", "src_word", "dst_word", "with_floats", "consts",
                 "bytes_per_element", "entries")

    def __init__(self, serial, parallel, src_word, dst_word, with_floats, consts):
        self.serial, self.parallel = serial, parallel
        self.src_word, self.dst_word = np.dtype(src_word), np.dtype(dst_word)
        self.with_floats, self.consts, self.entries = with_floats, consts, {}
        self.bytes_per_element = self.src_word.itemsize + self.dst_word.itemsize

    def __call__(self, src, dst, flags):
        bits, out = src.view(self.src_word), dst.view(self.dst_word)
        args = ((src, bits, out) if self.with_floats else (bits, out)) + self.consts
        n = src.size
        if n < SERIAL_BELOW:  # (the small-call path: no more calls than needed)
            entry = self.entries.get((self.serial, flags & 0x500))
            if entry is None:
                entry = self._entry(self.serial, flags, args + (False,))
            entry(*args, False)
            return
        stream = n * self.bytes_per_element > STREAM_ABOVE
        if region_threads() == 1:  # (as ``launch`` for a cast: no region, plain stores)
            self._entry(self.serial, flags, args + (False,))(*args, False)
            return
        tail = (min(MAX_CHUNKS, n // CHUNK_MIN), stream)  # (``n_chunks``)
        entry = self._entry(self.parallel, flags, args + tail)
        with parallel_region():
            entry(*args, *tail)

    def _entry(self, kernel, flags, args):
        key = (kernel, flags & 0x500)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = entry_point(kernel, *args)
        return entry
