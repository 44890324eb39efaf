"""Thread count and thread safety of the CPU kernels.

Numba's ``workqueue`` threading layer aborts the process when two Python threads run
parallel regions at once.  ``omp`` and ``tbb`` are safe.  The first parallel call runs
under a lock; if Numba then reports ``workqueue``, every later parallel call keeps
taking the lock (calls are serialized, results are unchanged).  ``numba.set_num_threads``
is thread-local, so the count chosen with :func:`set_num_threads` is applied in the
calling thread right before each parallel region.

A parallel region ends when its slowest thread does.  On a machine whose cores are all
taken by other work (a shared node, a busy CI machine), a worker thread waits for the
scheduler for milliseconds, and a call that takes 50 us alone takes 20-50 ms.  One
busy process is enough on a small machine: with one of two cores taken, a 16M-element
quantize took 16 ms instead of 1.7.  So when the count is left to fastq (no
:func:`set_num_threads`), parallel regions use only the cores that other processes leave
free (:func:`free_cores`), at least the calling thread: a steady core rather than a
share of a busy one and a wait at the barrier.
"""
import contextlib
import math
import os
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_lock = threading.Lock()
_layer_is_safe = None  # unknown until the first parallel region has run
_num_threads = None  # None: Numba's default (all cores)


def set_num_threads(n):
    """Bound the number of CPU threads fastq's parallel kernels use.

    Parameters
    ----------
    n : int or None
        1 to ``numba.config.NUMBA_NUM_THREADS``; ``None`` restores the default (all).
    """
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    n = int(n)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"n must be between 1 and {limit}, got {n}")
    _num_threads = n


@contextlib.contextmanager
def every_thread():
    """Inside the block, parallel regions use every thread (``NUMBA_NUM_THREADS``) whatever
    the machine's load: ``fastq warmup`` then compiles the parallel kernels that a quieter
    moment will run (a region left with one thread runs the serial kernel instead).  The
    count is process-wide: for a tool's own process, not a library call."""
    global _num_threads
    saved = _num_threads
    _num_threads = numba.config.NUMBA_NUM_THREADS
    try:
        yield
    finally:
        _num_threads = saved


def get_num_threads():
    """The number of CPU threads fastq's parallel kernels use (at most: see
    :func:`region_threads`)."""
    return _num_threads or numba.config.NUMBA_NUM_THREADS


LOAD_CHECK_S = 0.25  # how often the system's load is read (a small file in /proc)
LOAD_WINDOW_S = 60.0  # the load average's time constant (Linux: the 1-minute figure)
RUNNABLE_WINDOW_S = 2.0  # over how long the runnable tasks counted now are averaged
_load = {"checked": None, "cpu": 0.0, "own": 0.0, "runnable": 0.0, "free": None}


def system_load():
    """``(load, runnable)``: the 1-minute load average, and the threads runnable right now
    besides the calling one (Linux's ``/proc/loadavg``; elsewhere the load average less
    one); ``(0.0, 0.0)`` where the OS says neither."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0.0, 0.0
    try:
        with open("/proc/loadavg", "rb") as f:
            return load, float(int(f.read().split()[3].split(b"/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return load, max(0.0, load - 1.0)


def own_runnable_threads():
    """This process's runnable threads, the calling one included (Linux's
    ``/proc/self/task``; elsewhere 1).  ~6 us a thread."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                count += f.read().rpartition(b")")[2][1:2] == b"R"  # (the state field)
        except OSError:  # (a thread that has ended)
            pass
    return max(count, 1)


def free_cores():
    """Cores not taken by other processes, 1 to ``os.cpu_count()``.

    Two estimates of the other processes' runnable threads, and the smaller one counts:
    the 1-minute load average less this process's share of it (its CPU time per second,
    averaged the same way: fastq's own threads, spinning ones too, are not other work),
    which lags by a minute; and the runnable threads counted now, averaged over
    ``RUNNABLE_WINDOW_S``.  Where that count would take a core, this process's own
    runnable threads are left out of it (``own_runnable_threads``): its workers spin a
    few milliseconds after each region (fastq's, or any other parallel code's in the
    process), and counted as other work they took a core while the load average still
    held an earlier process's minute, so a new process's back-to-back calls settled on
    one thread.  Read at most every ``LOAD_CHECK_S``."""
    now = time.monotonic()
    state = _load
    if state["checked"] is not None and now - state["checked"] <= LOAD_CHECK_S:
        return state["free"]
    load, runnable = system_load()
    if runnable and load - state["own"] >= 0.5:  # (the count could take a core: whose?)
        runnable = max(0.0, runnable + 1 - own_runnable_threads())
    cpu = time.process_time()
    if state["checked"] is None:
        state["runnable"] = runnable
    else:
        elapsed = now - state["checked"]
        keep = math.exp(-elapsed / LOAD_WINDOW_S)
        state["own"] = keep * state["own"] + (1 - keep) * (cpu - state["cpu"]) / elapsed
        keep = math.exp(-elapsed / RUNNABLE_WINDOW_S)
        state["runnable"] = keep * state["runnable"] + (1 - keep) * runnable
    state["checked"], state["cpu"] = now, cpu
    others = min(load - state["own"], state["runnable"])
    cores = os.cpu_count() or 1
    state["free"] = min(cores, max(1, cores - int(others + 0.5)))
    return state["free"]


def region_threads():
    """Threads for the next parallel region: the count set with :func:`set_num_threads`,
    else as many as :func:`free_cores` (see the module docstring)."""
    if _num_threads is None:
        return min(get_num_threads(), free_cores())
    return get_num_threads()


# The thread count last applied in each thread (``numba.set_num_threads`` is thread-local
# and costs ~3 us a call: a small parallel call skips it when the count is unchanged).
_applied = threading.local()


def apply_thread_count(n):
    """``numba.set_num_threads(n)`` in the calling thread, unless fastq applied ``n``
    there last.  (A count set by other code in between, with ``numba.set_num_threads``
    directly, stays until fastq's count changes: slower or faster regions, same results.)"""
    if getattr(_applied, "count", None) != n:
        numba.set_num_threads(n)
        _applied.count = n


def note_thread_count(n):
    """Record that a kernel applied the count ``n`` in this thread itself
    (``set_thread_count``)."""
    _applied.count = n


class _ParallelRegion:
    """Enter around every call of a ``parallel=True`` kernel: ``with parallel_region():``
    (a plain class, not a generator: it runs on every kernel call)."""
    __slots__ = ("locked",)

    def __enter__(self):
        self.locked = not _layer_is_safe
        if self.locked:
            _lock.acquire()
        try:
            apply_thread_count(region_threads())
        except BaseException as exc:
            self.__exit__(type(exc))
            raise

    def __exit__(self, exc_type=None, *exc):
        global _layer_is_safe
        if self.locked:
            try:
                if _layer_is_safe is None and exc_type is None:  # (a region has run)
                    _layer_is_safe = numba.threading_layer() in ("omp", "tbb")
            finally:
                _lock.release()


def parallel_region():
    return _ParallelRegion()


def regions_unlocked():
    """Whether parallel regions run without the lock (a thread-safe layer, known once a
    region has run): a kernel may then set the thread count and start one itself."""
    return bool(_layer_is_safe)


def start_layer():
    """Start Numba's threading layer (once; later calls return at once), before the
    first CPU kernel module loads.  A cached kernel that calls a parallel one (the
    static per-tensor kernel calls the row kernels' parallel version, and sets the
    thread count: ``set_thread_count``) refers to the layer's C functions by name.
    Numba starts the layer when it loads a parallel kernel's own cache entry, but a
    caller compiled in a process that took the parallel kernel from the cache is cached
    without that hook; loading it in a process where no parallel kernel has run yet
    left those names unresolved, and its first call jumped to address 0 (seen with a
    repeated 4K static quantize as a process's first parallel-capable call).  ~8 ms."""
    from numba.np.ufunc.parallel import _launch_threads
    _launch_threads()


@intrinsic
def set_thread_count(typingctx, n):
    """``numba.set_num_threads(n)`` in a kernel that stays cacheable (Numba's own version
    holds a ctypes pointer, and a kernel holding one is compiled anew in every process):
    the threading layer's C function, by the symbol name Numba registers it under when
    the layer starts (at this typing, and when a cached library holding a parallel
    kernel loads).  ``n`` is not checked: 1 to ``NUMBA_NUM_THREADS``."""
    if isinstance(n, types.Integer):
        from numba.np.ufunc.parallel import _launch_threads
        _launch_threads()

        def codegen(context, builder, sig, args):
            fty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
            count = context.cast(builder, args[0], sig.args[0], types.int32)
            builder.call(cgutils.get_or_insert_function(builder.module, fty,
                                                        "set_num_threads"), [count])
            return context.get_dummy_value()
        return types.none(n), codegen
    return None
