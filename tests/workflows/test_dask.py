"""fastq.dask: lazy quantization of Dask arrays, bit for bit the in-memory results.

The reference is fastq's own in-memory path (itself pinned to ONNX's reference and
NumPy in the other test files) on the computed array.
"""
import os
import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastq as fq  # noqa: E402
import fastq.dask as fqd  # noqa: E402
from fastq.dask import tasks  # noqa: E402

DTYPES = ["int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2"]
GRANULARITIES = ["tensor", fq.PerChannel(0), fq.PerChannel(1), fq.PerGroup(8),
                 fq.PerGroup(5, axis=0), fq.PerBlock((6, 16))]
SYNC = dict(scheduler="synchronous")


@pytest.fixture(scope="module")
def x2():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, 52)).astype(np.float32) * 3
    x[4, :] = 0  # an all-zero channel
    x[:, 7] = 0
    x[9, 9] = 40.0  # one outlier: ranges must be reduced across chunks
    return x


def assert_same_qtensor(got, ref):
    assert isinstance(got, fq.QTensor)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert got.granularity == ref.granularity
    assert got.data.dtype == ref.data.dtype and got.data.shape == ref.data.shape
    assert np.array_equal(got.data, ref.data)
    ref_scale = np.asarray(ref.scale, np.float32)
    assert got.scale.shape == ref_scale.shape
    assert np.array_equal(got.scale.view(np.uint32), ref_scale.view(np.uint32))
    if ref.zero_point is None:
        assert got.zero_point is None
    else:
        ref_zero = np.asarray(ref.zero_point)
        assert got.zero_point.dtype == ref_zero.dtype
        assert np.array_equal(got.zero_point, ref_zero.reshape(got.zero_point.shape))


def bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize_equals_in_memory(x2, dtype, granularity):
    dx = da.from_array(x2, chunks=(10, 14))  # uneven: 10,10,10,7 x 14,14,14,10
    qd = fqd.quantize(dx, dtype, granularity=granularity)
    assert isinstance(qd, fqd.DaskQTensor)
    ref = fq.quantize(x2, dtype, granularity=granularity)
    fake = fqd.fake_quantize(dx, dtype, granularity=granularity)
    # one graph run (the range pass shared): QTensor.compute's parts, and the rest
    data, scale, zero, x_hat, codes, fake = dask.compute(
        qd.data, qd.scale, qd.zero_point, qd.dequantize(), qd.codes(), fake, **SYNC)
    got = fq.QTensor(data.reshape(ref.data.shape), dtype, scale, zero, qd.shape,
                     qd.granularity)
    assert_same_qtensor(got, ref)
    assert qd.nbytes == ref.nbytes
    assert bits_equal(x_hat, ref.dequantize())
    assert bits_equal(codes, ref.codes())
    assert bits_equal(fake, fq.fake_quantize(x2, dtype, granularity=granularity))


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("dtype", ["int8", "uint4"])
def test_symmetric_and_narrow_range(x2, dtype, granularity):
    dx = da.from_array(x2, chunks=(9, 17))
    for opts in (dict(scheme="symmetric"), dict(scheme="symmetric", narrow_range=True),
                 dict(narrow_range=True)):
        got = fqd.quantize(dx, dtype, granularity=granularity, **opts).compute(**SYNC)
        assert_same_qtensor(got, fq.quantize(x2, dtype, granularity=granularity, **opts))
        p = fqd.choose_qparams(dx, dtype, granularity=granularity, **opts)
        ref = fq.choose_qparams(x2, dtype, granularity=granularity, **opts)
        scale, zero = dask.compute(p.scale, p.zero_point, **SYNC)
        assert bits_equal(scale, np.asarray(ref.scale, np.float32))
        assert (zero is None) == (ref.zero_point is None)
        if zero is not None:
            assert bits_equal(zero, np.asarray(ref.zero_point))


@pytest.mark.parametrize("granularity", [
    "tensor", fq.PerChannel(1), fq.PerChannel(-1), fq.PerGroup(4, axis=1),
    fq.PerBlock((2, 3, 8)), fq.PerBlock((1, 5, 2))], ids=repr)
def test_three_dimensions_and_input_dtypes(granularity):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 13, 24)).astype(np.float64)
    for dtype in (np.float64, np.float16, np.float32):
        xd = x.astype(dtype)
        dx = da.from_array(xd, chunks=(2, 5, 8))
        for qtype in ("int8", "uint4"):
            got = fqd.quantize(dx, qtype, granularity=granularity).compute(**SYNC)
            assert_same_qtensor(got, fq.quantize(xd, qtype, granularity=granularity))


def test_bfloat16_input_and_one_dimension():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(4)
    x = rng.standard_normal(1001).astype(ml_dtypes.bfloat16)  # odd: a padded last nibble
    dx = da.from_array(x, chunks=300)
    for g in ("tensor", fq.PerGroup(32), fq.PerChannel(0)):
        got = fqd.quantize(dx, "int4", granularity=g).compute(**SYNC)
        assert_same_qtensor(got, fq.quantize(x, "int4", granularity=g))


def test_nan_policy(x2):
    x = x2.copy()
    x[3, 3], x[20, 40], x[30, 1] = np.nan, np.inf, -np.inf
    dx = da.from_array(x, chunks=(10, 14))
    for g in ("tensor", fq.PerChannel(0), fq.PerGroup(8)):
        got = fqd.quantize(dx, "int8", granularity=g, nan_policy="ignore").compute(**SYNC)
        assert_same_qtensor(got, fq.quantize(x, "int8", granularity=g, nan_policy="ignore"))
    lazy = fqd.quantize(dx, "int8")  # the NaN is data: found when the graph runs
    with pytest.raises(ValueError, match="NaN"):
        lazy.compute(**SYNC)


def test_group_rechunk_only_where_needed(x2):
    aligned = da.from_array(x2, chunks=(10, 16))
    qd = fqd.quantize(aligned, "int8", granularity=fq.PerGroup(8))
    assert qd.chunks == aligned.chunks  # group boundaries already on chunk boundaries
    qd = fqd.quantize(aligned, "int8", granularity=fq.PerGroup(5, axis=0))
    assert qd.chunks == aligned.chunks
    split = da.from_array(x2, chunks=(10, 13))
    qd = fqd.quantize(split, "int8", granularity=fq.PerGroup(8))
    assert qd.chunks[0] == split.chunks[0]  # (the other axis is left alone)
    assert all(c % 8 == 0 for c in qd.chunks[1][:-1])
    qd = fqd.quantize(split, "int4", granularity=fq.PerChannel(0))
    assert all(c % 2 == 0 for c in qd.chunks[1][:-1])  # whole bytes per chunk
    assert qd.data.chunks[1] == tuple(c // 2 for c in qd.chunks[1])


def test_lazy_until_computed(x2):
    calls = []

    def counted(block):
        calls.append(block.shape)
        return block
    dx = da.from_array(x2, chunks=(10, 14)).map_blocks(counted, dtype=np.float32,
                                                        meta=np.empty((0, 0), np.float32))
    qd = fqd.quantize(dx, "int4", granularity=fq.PerGroup(8))
    x_hat = qd.dequantize()
    fake = fqd.fake_quantize(dx, "uint8", granularity=fq.PerChannel(1))
    p = fqd.choose_qparams(dx, "int8")
    m = fqd.metrics(dx, fake)
    c = fqd.cast(dx, "bfloat16")
    assert calls == [] and isinstance(m, dask.delayed(int)(0).__class__)
    dask.compute(x_hat, p.scale, m, c, **SYNC)
    assert calls


def test_bad_input_raises_at_graph_build(x2):
    def poison(block):
        raise AssertionError("computed")
    dx = da.from_array(x2, chunks=(10, 14)).map_blocks(poison, dtype=np.float32,
                                                        meta=np.empty((0, 0), np.float32))
    with pytest.raises(TypeError, match="x must be a dask.array.Array"):
        fqd.quantize(x2, "int8")
    with pytest.raises(TypeError, match="x must be"):
        fqd.cast(x2, "float16")
    with pytest.raises(TypeError, match="x must be"):
        fqd.metrics(x2, x2)
    with pytest.raises(TypeError, match="qt must be"):
        fqd.dequantize(fq.quantize(x2, "int8"))
    with pytest.raises(TypeError, match="x must be a float16"):
        fqd.quantize(dx.astype(np.int32), "int8")
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        fqd.quantize(dx, "int8", granularity=fq.PerChannel(2))
    with pytest.raises(ValueError, match="axis -3 is out of range"):
        fqd.fake_quantize(dx, "int8", granularity=fq.PerGroup(4, axis=-3))
    with pytest.raises(ValueError, match="dimensions"):
        fqd.quantize(dx, "int8", granularity=fq.PerBlock((4,)))
    with pytest.raises(ValueError, match="dtype"):
        fqd.quantize(dx, "int3")
    with pytest.raises(ValueError, match="scheme"):
        fqd.quantize(dx, "int8", scheme="affine")
    with pytest.raises(ValueError, match="nan_policy"):
        fqd.choose_qparams(dx, "int8", nan_policy="omit")
    with pytest.raises(ValueError, match="observer"):
        fqd.choose_qparams(dx, "int8", observer="entropy")
    odd = da.from_array(x2[:, :49], chunks=(10, 14))  # 49 nibbles a row: a byte split
    with pytest.raises(ValueError, match="x has a last axis of 49"):
        fqd.quantize(odd, "int4")
    with pytest.raises(ValueError, match="x has a last axis of 49"):
        fqd.quantize(odd, "uint2", granularity=fq.PerGroup(7))
    fqd.fake_quantize(odd, "int4")  # nothing packed: fine
    with pytest.raises(ValueError, match="to must be"):
        fqd.cast(dx, "float12")
    with pytest.raises(ValueError, match="stochastic"):
        fqd.cast(dx, "bfloat16", rounding="stochastic")
    with pytest.raises(ValueError, match="x_hat must have x's shape"):
        fqd.metrics(dx, dx[:3])
    with pytest.raises(ValueError, match="at least one dimension"):
        fqd.quantize(da.from_array(np.float32(1.0)), "int8")


def test_cast_equals_in_memory(x2):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = x2.copy()
    x[0, :4] = [np.nan, np.inf, 1e6, 6e-8]
    dx = da.from_array(x, chunks=(10, 14))
    for to, kw in (("float16", {}), ("bfloat16", {}), ("bfloat16", {"rounding": "truncate"}),
                   ("float16", {"saturate": True}), ("float64", {})):
        got = fqd.cast(dx, to, **kw).compute(**SYNC)
        assert bits_equal(got, fq.cast(x, to, **kw))
    b = x.astype(ml_dtypes.bfloat16)
    assert bits_equal(fqd.cast(da.from_array(b, chunks=7), "float32").compute(**SYNC),
                      fq.cast(b, "float32"))


def test_metrics_within_documented_tolerance(x2):
    x_hat = fq.fake_quantize(x2, "int4", granularity=fq.PerGroup(8))
    dx, dh = da.from_array(x2, chunks=(10, 14)), da.from_array(x_hat, chunks=(5, 50))
    got, ref = fqd.metrics(dx, dh).compute(**SYNC), fq.metrics(x2, x_hat)
    assert got.max_abs == ref.max_abs
    for name in ("mae", "mse", "rmse", "sqnr_db", "cosine"):
        assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-12), name
    one = fqd.metrics(da.from_array(x2, chunks=-1), x_hat).compute(**SYNC)
    assert one == ref  # one chunk: the in-memory pass itself
    bad = x_hat.copy()
    bad[3, 3] = np.nan
    assert np.isnan(fqd.metrics(dx, bad).compute(**SYNC).max_abs)


def test_memmap_larger_than_chunks(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    dx = da.from_array(mm, chunks=(48, 384))  # 72 KB chunks of a 1 MB file
    streamed = fqd.from_npy(tmp_path / "x.npy", chunks=(48, 384))  # (from_array copies)
    assert streamed.chunks == dx.chunks
    for dtype, g in (("int8", fq.PerChannel(0)), ("uint4", fq.PerGroup(128)),
                     ("int2", "tensor"), ("int16", fq.PerBlock((64, 64)))):
        ref = fq.quantize(x, dtype, granularity=g)
        got = fqd.quantize(dx, dtype, granularity=g).compute(scheduler="threads")
        assert_same_qtensor(got, ref)
        got = fqd.quantize(streamed, dtype, granularity=g).compute(scheduler="threads")
        assert_same_qtensor(got, ref)


def test_results_pickle(x2):
    qd = fqd.quantize(da.from_array(x2, chunks=(10, 14)), "uint4",
                      granularity=fq.PerGroup(8))
    again = pickle.loads(pickle.dumps(qd))
    assert_same_qtensor(again.compute(**SYNC), fq.quantize(x2, "uint4",
                                                           granularity=fq.PerGroup(8)))
    computed = pickle.loads(pickle.dumps(qd.compute(**SYNC)))
    assert isinstance(computed, fq.QTensor)


def test_thread_count_shared_out_per_task(x2):
    seen = []

    @tasks.in_task
    def record(block):
        seen.append(fq.get_num_threads())
        return block
    before = fq.get_num_threads()
    dx = da.from_array(x2, chunks=(10, 14))
    meta = np.empty((0, 0), np.float32)  # (no call of record at graph build)
    dx.map_blocks(record, dtype=np.float32, meta=meta).compute(scheduler="threads",
                                                               num_workers=2)
    assert set(seen) == {max(1, tasks.cores() // 2)}
    dx.map_blocks(record, dtype=np.float32, meta=meta).compute(**SYNC)
    assert seen[-1] == min(before, tasks.cores())
    assert fq.get_num_threads() == before  # restored once the tasks are done
    fq.set_num_threads(1)
    try:
        seen.clear()
        dx.map_blocks(record, dtype=np.float32, meta=meta).compute(**SYNC)
        assert set(seen) == {1}  # never above the user's own setting
    finally:
        fq.set_num_threads(None)


def test_import_fastq_does_not_import_dask():
    code = "import sys, fastq; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())


def _local_cluster():
    """Two worker processes on the loopback interface, one thread each."""
    distributed = pytest.importorskip("distributed")
    import logging
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=logging.ERROR)
    return distributed, cluster, distributed.Client(cluster)


def _fastq_file():
    import fastq
    return fastq.__file__


def test_distributed_scheduler_in_process(x2):
    """The fast one: dask.distributed's scheduler and two workers in this process
    (worker processes: the slow tests below)."""
    distributed = pytest.importorskip("distributed")
    import logging
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None,  # (in-process comms: no network)
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster):
        qd = fqd.quantize(da.from_array(x2, chunks=(19, 26)), "uint4",
                          granularity=fq.PerGroup(8))
        assert_same_qtensor(qd.compute(), fq.quantize(x2, "uint4", granularity=fq.PerGroup(8)))


def test_distributed_local_cluster(x2):
    """Worker processes, kept short: 4 chunks, one dtype (starting the workers and their
    first task, which loads the kernels from the on-disk cache, take most of its 6 s on
    an idle machine; up to 30 s on a loaded one)."""
    distributed, cluster, client = _local_cluster()
    try:
        assert set(client.run(_fastq_file).values()) == {fq.__file__}  # this fastq
        # each worker runs one task at a time: its tasks may use every core
        assert set(client.run(tasks.scheduler_threads).values()) == {1}
        qd = fqd.quantize(da.from_array(x2, chunks=(19, 26)), "int4",
                          granularity=fq.PerGroup(8))
        ref = fq.quantize(x2, "int4", granularity=fq.PerGroup(8))
        assert_same_qtensor(qd.compute(), ref)
        assert bits_equal(qd.dequantize().compute(), ref.dequantize())
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_distributed_every_dtype_and_granularity(x2):
    distributed, cluster, client = _local_cluster()
    try:
        dx = da.from_array(x2, chunks=(10, 14))
        for dtype in DTYPES:
            for g in GRANULARITIES:
                ref = fq.quantize(x2, dtype, granularity=g)
                qd = fqd.quantize(dx, dtype, granularity=g)
                data, scale, x_hat = dask.compute(qd.data, qd.scale, qd.dequantize())
                assert np.array_equal(data.reshape(ref.data.shape), ref.data)
                assert bits_equal(scale, np.asarray(ref.scale, np.float32))
                assert bits_equal(x_hat, ref.dequantize())  # (zero points included)
        fake = fqd.fake_quantize(dx, "uint4", granularity=fq.PerChannel(0)).compute()
        assert bits_equal(fake, fq.fake_quantize(x2, "uint4", granularity=fq.PerChannel(0)))
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_distributed_worker_killed_mid_task(x2, tmp_path):
    flag = str(tmp_path / "killed-once")

    def kill_once(block):  # (a closure: pickled by value to the workers)
        import signal
        if block.shape[0] and not os.path.exists(flag):
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return block
    distributed, cluster, client = _local_cluster()
    try:
        dx = da.from_array(x2, chunks=(10, 14)).map_blocks(kill_once, dtype=np.float32)
        for dtype, g in (("int4", fq.PerGroup(8)), ("int8", fq.PerChannel(0))):
            got = fqd.quantize(dx, dtype, granularity=g).compute()
            assert_same_qtensor(got, fq.quantize(x2, dtype, granularity=g))
        assert os.path.exists(flag)  # a worker did die, and the tasks were retried
    finally:
        client.close()
        cluster.close()


# Run in a fresh process: quantize a memmapped .npy of ``GB`` GB chunk by chunk into a
# memmapped output, and report the peak of the heap (tracemalloc: NumPy reports its
# buffers to it) and of the anonymous resident memory (RssAnon: memmapped file pages,
# which the kernel may drop at any time, are not counted), both above the baseline
# after a warm-up.
MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, threading, time, tracemalloc
    import numpy as np, dask, dask.array as da
    import fastq as fq, fastq.dask as fqd

    path, out_path, rows_per_chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    mm = np.load(path, mmap_mode="r")  # (its shape)
    warm = da.from_array(np.ones((8, mm.shape[1]), np.float32), chunks=(4, -1))
    fqd.quantize(warm, "int8", granularity=fq.PerChannel(0)).compute()
    base, peak = rss_anon(), [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.005)
    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    dx = fqd.from_npy(path, chunks=(rows_per_chunk, -1))  # (from_array copies a memmap)
    qd = fqd.quantize(dx, "int8", granularity=fq.PerChannel(0))
    out = np.lib.format.open_memmap(out_path, "w+", np.int8, mm.shape)
    da.store(qd.data, out, lock=False, scheduler="threads", num_workers=2)
    scale = qd.scale.compute(scheduler="threads", num_workers=2)
    seconds = time.perf_counter() - t0
    heap = tracemalloc.get_traced_memory()[1]
    done.set()
    sampler.join()
    out.flush()
    print(json.dumps({"heap": heap, "rss_anon": peak[0] - base, "seconds": seconds,
                      "chunk": rows_per_chunk * mm.shape[1] * 4}))
""")


@pytest.mark.slow
def test_memory_of_a_2gb_memmap(tmp_path):
    import json
    rows, cols, rows_per_chunk = 8192, 65536, 256  # 2 GiB, chunks of 64 MiB
    path, out_path = tmp_path / "x.npy", tmp_path / "q.npy"
    x = np.lib.format.open_memmap(path, "w+", np.float32, (rows, cols))
    rng = np.random.default_rng(0)
    for i in range(0, rows, 512):
        x[i:i + 512] = rng.standard_normal((512, cols), np.float32)
    x.flush()
    del x
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fq.__file__)))
    run = subprocess.run([sys.executable, str(script), str(path), str(out_path),
                          str(rows_per_chunk)], capture_output=True, text=True, env=env,
                         check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print("2 GiB memmap, int8 per-channel:", report)
    bound = 4 * report["chunk"] + 200 * 2**20
    assert report["heap"] < bound and report["rss_anon"] < bound, report
    mm = np.load(path, mmap_mode="r")
    rows_to_check = slice(1000, 1300)  # (the codes of a channel need only its row)
    ref = fq.quantize(np.asarray(mm[rows_to_check]), "int8", granularity=fq.PerChannel(0))
    assert np.array_equal(np.load(out_path, mmap_mode="r")[rows_to_check], ref.data)


@pytest.mark.slow
def test_two_threads_scale_four_chunks():
    """A 4-chunk array at 1 and 2 threads of the threaded scheduler, fastq's own threads
    at one per task (so the cores are Dask's): the kernels release the GIL, so two
    threads run two chunks at once.  Asserted where the machine has two idle cores (a
    loaded shared machine measures its neighbours); printed always."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1 << 23), np.float32)  # 4 chunks of 32 MiB
    dx = da.from_array(x, chunks=(1, -1))
    qd = fqd.quantize(dx, "int8", scheme="symmetric", granularity=fq.PerChannel(0))
    times = {1: np.inf, 2: np.inf}
    fq.set_num_threads(1)
    try:
        for _ in range(4):
            for workers in (1, 2):
                t0 = time.perf_counter()
                qd.data.compute(scheduler="threads", num_workers=workers)
                times[workers] = min(times[workers], time.perf_counter() - t0)
    finally:
        fq.set_num_threads(None)
    load = os.getloadavg()[0]
    print(f"4 chunks of 32 MiB, int8 per-channel: 1 thread {times[1]:.3f} s, "
          f"2 threads {times[2]:.3f} s, speed-up {times[1] / times[2]:.2f}x (load {load:.1f})")
    if (os.cpu_count() or 1) >= 2 and load < (os.cpu_count() or 1) - 1.5:
        assert times[1] / times[2] > 1.4


@pytest.mark.parametrize("observer, granularity", [
    ("minmax", "tensor"), ("minmax", fq.PerChannel(1)), ("moving_average", fq.PerGroup(4)),
    ("percentile", "tensor"), ("entropy", fq.PerChannel(1))], ids=str)
def test_calibrator_fits_chunk_by_chunk(x2, observer, granularity):
    if not hasattr(fq, "Calibrator"):
        pytest.skip("no fq.Calibrator")
    dx = da.from_array(x2[:36], chunks=(9, 14))  # batches of 9 rows, all columns
    cal = fqd.fit(fq.Calibrator("int8", granularity=granularity, observer=observer), dx,
                  **SYNC)
    ref = fq.Calibrator("int8", granularity=granularity, observer=observer)
    for i in range(0, 36, 9):
        ref.update(x2[i:i + 9])
    got, want = cal.qparams(), ref.qparams()
    assert bits_equal(got.scale, want.scale)
    assert bits_equal(got.zero_point, want.zero_point)
    if observer == "minmax" and granularity == "tensor":  # (one range: the whole one)
        assert bits_equal(got.scale, fq.choose_qparams(x2[:36], "int8").scale)


def test_calibrator_bad_input(x2):
    if not hasattr(fq, "Calibrator"):
        pytest.skip("no fq.Calibrator")
    with pytest.raises(TypeError, match="calibrator must be"):
        fqd.fit("minmax", da.from_array(x2))
    with pytest.raises(TypeError, match="x must be a dask.array.Array"):
        fqd.fit(fq.Calibrator("int8"), x2)
    uneven = da.from_array(x2, chunks=(10, 14))  # 37 rows: 10, 10, 10, 7
    with pytest.raises(ValueError, match="chunks along axis 0 must have one size"):
        fqd.fit(fq.Calibrator("int8", granularity=fq.PerChannel(1)), uneven)
    fqd.fit(fq.Calibrator("int8"), uneven, **SYNC)  # per tensor: any batch shapes
