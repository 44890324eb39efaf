"""Large host outputs come from a pool of buffers (``fastq.runtime.pool``): ordinary arrays,
never handed out twice while any view of them lives, and the pool stays bounded."""
import concurrent.futures
import gc
import sys

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.runtime import pool as _memory

BIG = _memory.POOLED_FROM // 4  # float32 elements: just pooled


@pytest.fixture(autouse=True)
def empty_pool():
    _memory.release()
    yield
    _memory.release()


def address(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint16, ml_dtypes.bfloat16])
def test_pooled_arrays_are_ordinary(dtype):
    shape = (2, BIG * 4 // np.dtype(dtype).itemsize // 2 + 3)
    a = _memory.host_array(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    a[...] = 1
    assert (a.astype(np.float32) == 1).all()
    small = _memory.host_array((3, 4), dtype)
    assert small.flags.owndata  # plain np.empty below the threshold


def test_buffer_reused_only_after_the_last_view_dies():
    a = _memory.host_array(BIG, np.float32)
    view = a[100:].reshape(-1, 4)[::2]
    where = address(a)
    del a
    gc.collect()
    b = _memory.host_array(BIG, np.float32)  # the view still holds a's buffer
    assert address(b) != where
    view[...] = 7
    b[...] = 3
    assert (view == 7).all()
    del view
    gc.collect()
    c = _memory.host_array(BIG, np.float32)  # now a's buffer is free again
    assert address(c) == where
    assert (b == 3).all()


def test_pool_is_bounded():
    arrays = [_memory.host_array(BIG, np.float32) for _ in range(_memory.POOL_BUFFERS + 3)]
    del arrays
    gc.collect()
    free = _memory.free_buffers()
    assert len(free) <= _memory.POOL_BUFFERS and sum(free) <= _memory.POOL_BYTES


def test_results_survive_reuse():
    """Results from the pool keep their values while later calls reuse other buffers."""
    x = np.random.default_rng(0).standard_normal(BIG).astype(np.float32)
    qt = fq.quantize(x, "int8")
    first = fq.dequantize(qt)
    keep = first.copy()
    for _ in range(3):
        other = fq.dequantize(qt)
        assert not np.shares_memory(other, first)
        other[...] = -1
        del other
    assert np.array_equal(first, keep)
    h = fq.cast(x, "float64")
    assert np.array_equal(h, x.astype(np.float64))


def test_threads_never_share_a_buffer():
    def work(seed):
        a = _memory.host_array(BIG, np.float32)
        a[...] = seed
        for _ in range(3):
            b = _memory.host_array(BIG, np.float32)
            b[...] = -seed
            del b
        return bool((a == seed).all())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_repeated_large_outputs_do_not_fault():
    """A repeated large call writes into memory already mapped, whatever the heap did.

    ``malloc_trim`` stands for the history that made glibc hand a freed output back to
    the OS (in a process also running torch and ONNX Runtime a 16M-element static
    quantize then took 25-60 ms instead of 3 ms, nearly all of it page faults)."""
    import ctypes
    import resource
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "malloc_trim"):
        pytest.skip("not glibc")
    x = np.random.default_rng(1).standard_normal(2 << 20).astype(np.float32)  # 2 MB out
    calls = {"static quantize": lambda: fq.quantize(x, "int8", scale=0.02, zero_point=0),
             "cast": lambda: fq.cast(x, "bfloat16")}
    for name, call in calls.items():
        call()  # the pool's first buffer
        faults = []
        for _ in range(5):
            gc.collect()
            libc.malloc_trim(0)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            result = call()
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            del result
        # 2 MB of fresh pages would be 512 faults (or 1 huge page); allow a little noise
        assert sorted(faults)[2] < 64, (name, faults)


@pytest.mark.parametrize("nbytes", [_memory.POOLED_FROM, _memory.POOLED_FROM + 5, 3 << 20])
def test_pooled_arrays_start_on_a_cache_line(nbytes):
    # (a 64-byte vector store to an output 16 bytes past a line, NumPy's usual placement
    # of large arrays, touches two lines: dequantizing 16M elements took twice as long)
    held = [_memory.host_array(nbytes, np.uint8) for _ in range(3)]
    assert all(address(a) % _memory.LINE == 0 for a in held)
    del held
    gc.collect()
    again = _memory.host_array(nbytes, np.uint8)  # a reused buffer too
    assert address(again) % _memory.LINE == 0 and again.size == nbytes
