"""Running fastq's kernels inside Dask tasks without oversubscribing the cores.

fastq's kernels release the GIL and run parallel regions of their own, so a Dask
scheduler running ``T`` tasks at once, each with fastq's default thread count (every
core), would run ``T x cores`` threads on ``cores`` cores.  Every task function of
``fastq.dask`` runs under :func:`in_task`: while at least one of them runs in a process,
fastq's thread count (``fq.set_num_threads``, process-wide) is ``max(1, cores // T)``
(never above the count the user had set), and the user's setting comes back when the
last one ends.  ``T`` is the scheduler's thread count: a ``dask.distributed`` worker's
``nthreads``, the threaded scheduler's pool size, 1 on the synchronous scheduler, and
every core when unknown (then each task runs single-threaded: never oversubscribed).
"""
import functools
import os
import sys
import threading

import numba

from ..runtime import threads

_lock = threading.Lock()
_running = 0  # fastq.dask tasks running in this process
_saved = None  # the user's thread count (None: the default), while tasks run


def cores():
    """The CPU threads fastq may use in this process."""
    return max(1, min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS))


def scheduler_threads():
    """How many tasks the scheduler running the current task runs at once."""
    worker = None
    if "distributed" in sys.modules:  # (a worker process has it; never imported here)
        try:
            worker = sys.modules["distributed"].get_worker()
        except (AttributeError, ValueError):  # not in a worker
            worker = None
    if worker is not None:
        state = getattr(worker, "state", worker)
        return max(1, int(getattr(state, "nthreads", 0) or cores()))
    current = threading.current_thread()
    if current is threading.main_thread():  # the synchronous scheduler
        return 1
    try:  # the threaded scheduler: the executor whose thread this is
        import dask.threaded as threaded
        pools = [threaded.default_pool]
        pools += [p for per_thread in list(threaded.pools.values())
                  for p in list(per_thread.values())]
        for pool in pools:
            if pool is not None and current in getattr(pool, "_threads", ()):
                return max(1, int(pool._max_workers))
    except Exception:  # (private attributes of another library: any change, fall back)
        pass
    return cores()


def threads_per_task(user_threads=None):
    """``max(1, cores // scheduler threads)``, at most ``user_threads`` when given."""
    n = max(1, cores() // scheduler_threads())
    return n if user_threads is None else max(1, min(n, user_threads))


def in_task(function):
    """Wrap a task function: fastq's thread count is shared out while it runs (module
    docstring).  The wrapper keeps the function's name, so it pickles by reference."""
    @functools.wraps(function)
    def task(*args, **kwargs):
        global _running, _saved
        with _lock:
            if _running == 0:
                _saved = threads._num_threads
                threads.set_num_threads(threads_per_task(_saved))
            _running += 1
        try:
            return function(*args, **kwargs)
        finally:
            with _lock:
                _running -= 1
                if _running == 0:
                    threads.set_num_threads(_saved)
    return task
