"""The small-call path: below the serial threshold every operation runs in the calling
thread (no parallel region: on a busy machine waking the threads costs milliseconds),
and a repeated call reuses its plan; results are those of the general path."""
import copy
import gc
import pickle
import sys
import threading
import types

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.core.layout import SERIAL_BELOW
from fastq.ops import plans
from fastq.runtime import threads

SHAPE = (4, 1024)  # 4K elements, as a model's small tensors
CHANNELS = fq.PerChannel(0)


@pytest.fixture
def no_parallel_region(monkeypatch):
    """Fail any parallel region (every kernel module takes it from threads at import)."""
    import fastq.kernels.cpu.linear.ranges as ranges
    import fastq.kernels.cpu.metrics as metrics
    import fastq.kernels.cpu.pack as pack
    import fastq.kernels.cpu.parallel as parallel
    import fastq.kernels.cpu.quant as quant

    def refuse():
        raise AssertionError("a parallel region ran for a small input")
    for module in (threads, ranges, metrics, pack, parallel, quant):
        monkeypatch.setattr(module, "parallel_region", refuse)


CALLS = {
    "dynamic per tensor": lambda x: fq.quantize(x, "uint8").data,
    "dynamic per tensor int4": lambda x: fq.quantize(x, "int4", scheme="symmetric").data,
    "static per tensor": lambda x: fq.quantize(x, "int8", scale=np.float32(0.02),
                                               zero_point=np.int8(3)).data,
    "per channel, last axis": lambda x: fq.quantize(x, "int8", granularity=fq.PerChannel(1)).data,
    "per channel, first axis": lambda x: fq.quantize(x, "int8", scheme="symmetric",
                                                     granularity=fq.PerChannel(0)).data,
    "per group": lambda x: fq.quantize(x, "int4", granularity=fq.PerGroup(128)).data,
    "fake quantize": lambda x: fq.fake_quantize(x, "int8"),
    "dequantize": lambda x: fq.dequantize(fq.quantize(x, "int8", scale=np.float32(0.02))),
    "cast float16": lambda x: fq.cast(x, "float16"),
    "cast bfloat16": lambda x: fq.cast(x, "bfloat16"),
    "metrics": lambda x: np.array(fq.metrics(x, x * np.float32(1.001)).mse),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_small_inputs_run_in_the_calling_thread(name, no_parallel_region):
    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    assert x.size < SERIAL_BELOW
    first, again = CALLS[name](x), CALLS[name](x)  # (the second: from the cached plan)
    first, again = np.atleast_1d(first), np.atleast_1d(again)
    assert np.array_equal(first.view(np.uint8), again.view(np.uint8))


def test_repeated_static_call_equals_the_general_path(monkeypatch):
    x = np.random.default_rng(1).standard_normal(SHAPE, dtype=np.float32)
    x[0, :3] = [0.01, -0.01, 0.03]  # (ties at the scale below)
    fast = [fq.quantize(x, "int8", scale=0.02, zero_point=-1) for _ in range(3)]
    monkeypatch.setattr(plans, "static_per_tensor", lambda *args: None)
    slow = fq.quantize(x, "int8", scale=0.02, zero_point=-1)
    for qt in fast:
        assert np.array_equal(qt.data, slow.data) and qt.scale == slow.scale
        assert qt.zero_point == slow.zero_point
    with pytest.raises(ValueError, match="scale"):  # (a bad scale still raises on the short path)
        fq.quantize(x, "int8", scale=-1.0)


def test_repeated_cast_checks_what_the_plan_does_not_cover():
    x = np.ones(SHAPE, np.float32)
    fq.cast(x, "float16")
    assert fq.cast(x[:, ::2], "float16").shape == (4, 512)  # (not contiguous: general path)
    with pytest.raises(ValueError, match="rounding"):
        fq.cast(x, "float16", rounding="up")
    with pytest.raises(ValueError, match="seed"):
        fq.cast(x, "float16", seed=3)
    bf = fq.cast(x.astype(">f4"), "bfloat16")  # (another byte order: its own plan)
    assert np.array_equal(bf.view(np.uint16), fq.cast(x, "bfloat16").view(np.uint16))


def test_busy_machine_runs_parallel_regions_on_the_calling_thread(monkeypatch):
    """With every core taken by other work, a worker thread waits for the scheduler at
    each region's barrier: fastq then runs its regions on one thread, unless the caller
    chose a count with set_num_threads."""
    import os
    cores = os.cpu_count() or 1

    def machine(load, runnable):
        monkeypatch.setattr(threads, "_load", dict(threads._load, checked=None, own=0.0))
        monkeypatch.setattr(threads, "system_load", lambda: (load, runnable))
        monkeypatch.setattr(threads, "own_runnable_threads", lambda: 1)  # (no own spinning)

    machine(cores + 3.0, cores + 3.0)
    assert threads.region_threads() == 1
    x = np.random.default_rng(2).standard_normal((64, 4096), dtype=np.float32)
    busy = fq.quantize(x, "uint8")
    try:
        fq.set_num_threads(threads.get_num_threads())
        assert threads.region_threads() == threads.get_num_threads()
    finally:
        fq.set_num_threads(None)
    # a busy minute that has ended (nothing runnable now), or a load that is this
    # process's own (its threads spinning): the cores are free
    machine(cores + 3.0, 0.0)
    assert threads.region_threads() == threads.get_num_threads()
    machine(0.0, cores + 3.0)
    assert threads.region_threads() == threads.get_num_threads()
    machine(0.0, 0.0)
    assert threads.region_threads() == threads.get_num_threads()
    quiet = fq.quantize(x, "uint8")
    if cores >= 2:  # one other busy thread leaves cores - 1
        machine(1.0, 1.0)
        assert threads.free_cores() == cores - 1
    assert np.array_equal(busy.data, quiet.data) and busy.scale == quiet.scale


def test_own_runnable_threads_are_not_other_work(monkeypatch):
    """A runnable thread of this process (a worker spinning after a region) does not
    take a core from the next region, however busy the last minute was; another
    process's does."""
    import os
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core")
    monkeypatch.setattr(threads, "system_load", lambda: (1.0, 1.0))
    for own, free in ((2, cores), (1, cores - 1)):  # (the calling thread, and one spinning)
        monkeypatch.setattr(threads, "_load", dict(threads._load, checked=None, own=0.0))
        monkeypatch.setattr(threads, "own_runnable_threads", lambda: own)
        assert threads.free_cores() == free
    monkeypatch.undo()
    assert threads.own_runnable_threads() >= 1  # (reading it here: the calling thread runs)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        seen = max(threads.own_runnable_threads() for _ in range(200))
    finally:
        stop.set()
        spinner.join()
    assert seen >= 2 or sys.platform != "linux"


def calls_made(f):
    """What ``f()`` runs, as ``sys.setprofile`` sees it: the code of each Python function
    and each C function (a kernel's compiled code is one) called.  The garbage collector
    is off meanwhile: its callbacks (hypothesis registers one) are not the call's."""
    seen = []

    def profile(frame, event, arg):
        if event == "call":
            seen.append(frame.f_code)
        elif event == "c_call":
            seen.append(arg)
    collecting = gc.isenabled()
    gc.disable()
    sys.setprofile(profile)
    try:
        f()
    finally:
        sys.setprofile(None)
        if collecting:
            gc.enable()
    return seen


def refuse_planning(monkeypatch):
    """Fail every validation and planning helper, and every way to a kernel but the
    compiled code a plan holds: a repeated small call must need none of them."""
    import fastq.kernels.cpu.cast as cast_kernels
    import fastq.kernels.cpu.parallel as parallel
    import fastq.kernels.cpu.linear.tensor as tensor
    import fastq.kernels.cpu.quant as quant
    from fastq.core import checks
    from fastq.ops import casting, linear, quantization

    def refuse(*args, **kwargs):
        raise AssertionError("a repeated small call planned or validated again")
    for module, name in [(checks, "as_array"), (checks, "as_float_array"),
                         (checks, "check_choice"), (checks, "check_bool"),
                         (casting, "plan_cast"), (casting, "run_cast"), (linear, "_dequantize_plan"),
                         (linear, "dequantize_codes"), (linear, "check_static_params"),
                         (quantization, "QuantizeCall"), (plans, "remember"),
                         (tensor, "entry_point"), (quant, "entry_point"),
                         (parallel, "entry_point"), (cast_kernels, "launch")]:
        monkeypatch.setattr(module, name, refuse)


REPEATED = {  # a repeated call -> the Python functions it may run (no others)
    "dynamic per tensor": (lambda x, qt: fq.quantize(x, "uint8"),
                           {"quantize", "is_block_format", "dynamic_prepared", "_host_plan", "call",
                            "checked_qtensor"}),
    # (``__hash__``, ``__eq__``: the granularity in the plan's key)
    "dynamic per channel": (
        lambda x, qt: fq.quantize(x, "int8", scheme="symmetric", granularity=CHANNELS),
        {"quantize", "is_block_format", "_host_plan", "__hash__", "__eq__",
         "dynamic_prepared", "call", "_run", "_scratch", "_kernel", "checked_qtensor"}),
    "fake per tensor": (lambda x, qt: fq.fake_quantize(x, "uint8"),
                        {"fake_quantize", "dynamic_prepared", "_host_plan", "call"}),
    "fake per channel": (
        lambda x, qt: fq.fake_quantize(x, "int8", scheme="symmetric", granularity=CHANNELS),
        {"fake_quantize", "dynamic_prepared", "_host_plan", "__hash__", "__eq__", "call",
         "_run", "_scratch", "_kernel"}),
    "static per tensor": (
        lambda x, qt: fq.quantize(x, "int8", scale=0.02, zero_point=3),
        {"quantize", "is_block_format", "static_per_tensor", "_host_plan", "scalar_zero",
         "__call__", "scale_array", "zero_array", "checked_qtensor"}),
    "static per tensor, 0-d parameters": (  # (as choose_qparams returns them)
        lambda x, qt: fq.quantize(x, "int8", scale=qt.scale, zero_point=qt.zero_point),
        {"quantize", "is_block_format", "static_per_tensor", "_float_0d", "_int_0d",
         "_host_plan", "scalar_zero", "__call__", "scale_array", "zero_array",
         "checked_qtensor"}),
    "static per channel": (  # (the 4 rows of both shapes; NumPy's _methods: the checks)
        lambda x, qt: fq.quantize(x, "uint8", granularity=CHANNELS, scale=ROW_SCALES,
                                  zero_point=ROW_ZEROS),
        {"quantize", "is_block_format", "static_per_tensor", "_float_0d", "static_prepared",
         "_host_plan", "_given_arrays", "__hash__", "__eq__", "_all", "_any", "_amin",
         "_amax", "call", "_run", "_scratch", "_kernel", "checked_qtensor"}),
    "fake static per channel": (
        lambda x, qt: fq.fake_quantize(x, "uint8", granularity=CHANNELS, scale=ROW_SCALES,
                                       zero_point=ROW_ZEROS),
        {"fake_quantize", "static_prepared", "_host_plan", "_given_arrays", "__hash__",
         "__eq__", "_all", "_any", "_amin", "_amax", "call", "_run", "_scratch", "_kernel"}),
    "fake static per tensor": (  # (a float64 scale: rounded to float32 in Python)
        lambda x, qt: fq.fake_quantize(x, "uint8", scale=0.021, zero_point=3),
        {"fake_quantize", "static_prepared", "_host_plan", "_given_scalars",
         "_nearest_float32", "scalar_zero", "call", "_run", "_scratch", "_kernel"}),
    # (a QTensor dequantized again: its own prepared call, no plan key)
    "dequantize": (lambda x, qt: fq.dequantize(qt),
                   {"dequantize", "run", "__call__", "_rows"}),
    "cast bfloat16": (lambda x, qt: fq.cast(x, "bfloat16"), {"cast", "call", "__call__"}),
    "cast float16": (lambda x, qt: fq.cast(x, "float16"), {"cast", "call", "__call__"}),
    "cast float16 out=": (lambda x, qt: fq.cast(x, "float16", out=OUT16),
                          {"cast", "call", "__call__", "_direct_out", "may_share_memory"}),
}
OUT16 = np.empty(SHAPE, np.float16)
ROW_SCALES = np.float32(0.02) * np.arange(1, 5, dtype=np.float32)
ROW_ZEROS = np.array([3, 0, 128, 255], np.uint8)


# What a repeated call past the serial size may run besides: the thread count for the
# region (the system's load, read at most every 0.25 s), the region, the output pool.
MID_SIZE_CALLS = {"region_threads", "free_cores", "system_load", "get_num_threads",
                  "parallel_region", "__enter__", "__exit__", "apply_thread_count",
                  "note_thread_count", "regions_unlocked", "host_array", "size_class",
                  "_free_buffer", "_free_at", "_trim", "<genexpr>", "empty", "_entry"}
MID_SHAPE = (4, 1 << 16)  # 256K elements: chunks on the threads, or one thread


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def thread_count(request):
    """Regions of 1 or 2 threads, whatever the machine's load."""
    import numba
    if request.param > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("one thread only")
    fq.set_num_threads(request.param)
    yield request.param
    fq.set_num_threads(None)


@pytest.mark.parametrize("shape", [SHAPE, MID_SHAPE], ids=["4K", "256K"])
@pytest.mark.parametrize("name", sorted(REPEATED))
def test_repeated_call_takes_the_planned_path(name, shape, thread_count, monkeypatch):
    """Structure, not time: after a first call, the same call (same shapes, dtypes,
    flags) builds no plan, validates nothing again, runs only the Python functions of
    its short path and calls the kernel's compiled code directly (no Numba dispatch),
    at a serial size and past it, on one thread or two."""
    from fastq.ops import casting, linear
    call, allowed = REPEATED[name]
    if shape != SHAPE:
        if "out=" in name:
            pytest.skip("out= has the small shape")
        if name == "fake static per tensor":
            pytest.skip("a row the general path cuts for the threads: no prepared call")
        allowed = allowed | MID_SIZE_CALLS
    elif thread_count > 1:
        pytest.skip("a serial size runs on one thread")
    x = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    qt = fq.quantize(x, "int8", scale=0.02, zero_point=3, granularity=fq.PerTensor())
    first = call(x, qt)
    call(x, qt)
    sizes = plans.cache_size(), len(casting._plans), len(linear._dequantize_plans)
    with monkeypatch.context() as patch:
        refuse_planning(patch)
        seen = calls_made(lambda: call(x, qt))
        again = call(x, qt)
    assert (plans.cache_size(), len(casting._plans), len(linear._dequantize_plans)) == sizes
    python = {c.co_name for c in seen if isinstance(c, types.CodeType)}
    assert python <= allowed | {"<lambda>"}, python - allowed
    compiled = [c for c in seen if type(c).__name__ == "builtin_function_or_method"
                and "Dispatcher" not in repr(type(getattr(c, "__self__", None)))]
    assert compiled, "no kernel's compiled code was called"
    first, again = (np.asarray(r.data if isinstance(r, fq.QTensor) else r)
                    for r in (first, again))
    assert np.array_equal(first.view(np.uint8), again.view(np.uint8))


def test_planned_paths_equal_the_general_ones_and_check_new_input():
    """The short paths give the general path's bits, and an input whose facts differ
    (another dtype, layout, read-only, a bad scale) is checked in full again."""
    from fastq.ops import linear
    x = np.random.default_rng(4).standard_normal(SHAPE, dtype=np.float32)
    x[0, :4] = [np.nan, np.inf, -0.0, 1e-40]
    qt = fq.quantize(x, "int8", scale=0.02, zero_point=3, nan_policy="ignore")
    for _ in range(2):
        fast = [fq.dequantize(qt), fq.cast(x, "bfloat16"), fq.cast(x, "float16")]
    slow = [linear.dequantize_codes(qt.data, qt.scale, qt.zero_point, qt.shape,
                                    qt.granularity, linear.CPU,
                                    np.empty(SHAPE, np.float32)),
            x.astype(ml_dtypes.bfloat16), x.astype(np.float16)]
    for a, b in zip(fast, slow):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    read_only = x.copy()
    read_only.flags.writeable = False  # (another kernel type: its own compiled code)
    for _ in range(2):
        assert np.array_equal(fq.cast(read_only, "float16").view(np.uint16),
                              fast[2].view(np.uint16))
        assert np.array_equal(fq.quantize(read_only, "int8", scale=0.02, zero_point=3,
                                          nan_policy="ignore").data, qt.data)
    with pytest.raises(ValueError, match="zero_point"):
        fq.quantize(x, "int8", scale=0.02, zero_point=300)
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8", scale=0.02, zero_point=3)
    with pytest.raises(TypeError, match="x must be"):
        fq.quantize(np.ones(SHAPE, np.int32), "int8", scale=0.02)
    with pytest.raises(ValueError, match="granularity"):
        fq.quantize(x, "int8", scale=0.02, granularity="rows")
    bad = fq.QTensor(qt.data, "int8", np.ones(3, np.float32), None, qt.shape, qt.granularity)
    with pytest.raises(ValueError):
        bad.dequantize()


@pytest.mark.parametrize("granularity", [fq.PerTensor(), CHANNELS], ids=["tensor", "channel"])
def test_prepared_dequantize_follows_the_qtensor(granularity):
    """A QTensor dequantized again reuses its prepared call only while its parts are the
    objects it was made of; values changed in place and parts replaced give what the
    general path gives for the QTensor as it is now."""
    from fastq.ops import linear
    rng = np.random.default_rng(5)
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    qt = fq.quantize(x, "uint8", granularity=granularity)

    def general():
        return linear.dequantize_codes(qt.data, qt.scale, qt.zero_point, qt.shape,
                                       qt.granularity, linear.CPU,
                                       np.empty(qt.shape, np.float32))

    def check():
        for _ in range(2):  # (the first call prepares, the second runs prepared)
            assert np.array_equal(qt.dequantize().view(np.uint32), general().view(np.uint32))
    check()
    assert qt._prepared is not None
    for copied in (pickle.loads(pickle.dumps(qt)), copy.deepcopy(qt), copy.copy(qt)):
        assert np.array_equal(copied.dequantize(), qt.dequantize())
    qt.zero_point[...] = 7  # (in place: a 0-d zero point is read again on each call)
    check()
    qt.scale[...] = qt.scale * np.float32(3)
    qt.data[0, :5] = [0, 1, 254, 255, 9]
    check()
    qt.scale = qt.scale * np.float32(0.5)  # (parts replaced: planned again)
    check()
    qt.zero_point = np.full_like(qt.zero_point, 200)
    check()
    qt.data = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    check()
    qt.shape = (SHAPE[1], SHAPE[0])  # (a shape the per-channel scale does not fit: an error)
    if granularity == CHANNELS:
        with pytest.raises(ValueError):
            qt.dequantize()
    else:
        qt.data = qt.data.reshape(qt.shape)
        check()


def test_planned_paths_load_their_kernels_from_the_disk_cache(tmp_path):
    """A fresh process takes the compiled code it calls directly from Numba's on-disk
    cache (no compile), and gets the same bits."""
    x = np.random.default_rng(5).standard_normal(SHAPE, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    want = [fq.quantize(x, "int8", scale=0.02, zero_point=3).data, fq.cast(x, "bfloat16"),
            fq.dequantize(fq.quantize(x, "int8", scale=0.02, zero_point=3))]
    script = f"""
import numpy as np, fastq as fq
from fastq.kernels.cpu.linear import tensor
from fastq.kernels.cpu import quant
from fastq.kernels.cpu.floatbits import encode
x = np.load({str(tmp_path / "x.npy")!r})
for _ in range(2):
    got = [fq.quantize(x, "int8", scale=0.02, zero_point=3).data, fq.cast(x, "bfloat16"),
           fq.dequantize(fq.quantize(x, "int8", scale=0.02, zero_point=3))]
np.savez({str(tmp_path / "got.npz")!r}, *[g.view(np.uint8) for g in got])
misses = sum(sum(k.stats.cache_misses.values()) for k in (
    tensor.quantize_tensor, quant._dequantize_rows, encode.encode_slice))
print("misses", misses)
"""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "misses 0" in done.stdout
    got = np.load(tmp_path / "got.npz")
    for i, w in enumerate(want):
        assert np.array_equal(got[f"arr_{i}"], np.asarray(w).view(np.uint8))


def test_cast_into_out_checks_what_the_plan_does_not_cover():
    """A repeated cast into ``out=`` writes straight into it only when it is an aligned,
    writeable C-contiguous array of the right dtype and shape apart from ``x``; any
    other ``out`` takes the full path (its checks and errors)."""
    x = np.random.default_rng(4).standard_normal(SHAPE, dtype=np.float32)
    want = x.astype(np.float16).view(np.uint16)
    out = np.empty(SHAPE, np.float16)
    for _ in range(2):
        assert fq.cast(x, "float16", out=out) is out
        assert np.array_equal(out.view(np.uint16), want)
    strided = np.empty((SHAPE[0], SHAPE[1] * 2), np.float16)[:, ::2]
    assert np.array_equal(fq.cast(x, "float16", out=strided).view(np.uint16), want)
    readonly = np.empty(SHAPE, np.float16)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fq.cast(x, "float16", out=readonly)
    with pytest.raises(ValueError, match="dtype"):
        fq.cast(x, "float16", out=np.empty(SHAPE, np.float32))
    with pytest.raises(ValueError, match="shape"):
        fq.cast(x, "float16", out=np.empty(SHAPE[::-1], np.float16))
    same = x.copy()  # out over x's own memory: the general path copies first
    assert np.array_equal(fq.cast(same, "float32", out=same), x)


@pytest.mark.parametrize("shape", [SHAPE, MID_SHAPE], ids=["4K", "256K"])
@pytest.mark.parametrize("dtype, scheme, nan_policy", [
    ("uint8", "asymmetric", "raise"), ("int8", "symmetric", "ignore"),
    ("int4", "asymmetric", "ignore"), ("uint2", "symmetric", "raise"),
    ("int16", "asymmetric", "raise")])
def test_repeated_dynamic_call_equals_two_passes(shape, dtype, scheme, nan_policy,
                                                 thread_count, monkeypatch):
    """The planned dynamic per-tensor call gives the bits of separate range and quantize
    passes (scale, zero point, codes), and checks NaN and inf in each new input as the
    general path does."""
    from fastq.ops import quantization
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    x.flat[::1001] = np.float32(0.5) * np.arange(x.flat[::1001].size)  # (ties, somewhere)
    if nan_policy == "ignore":
        x.flat[[5, 77]] = [np.nan, -np.inf]

    def run():
        return fq.quantize(x, dtype, scheme=scheme, nan_policy=nan_policy)
    first, again = run(), run()  # (the second from the plan)
    with monkeypatch.context() as patch:
        patch.setattr(quantization, "_force_two_passes", True)
        want = run()
    for got in (first, again):
        assert np.array_equal(got.data, want.data)
        assert np.array_equal(np.asarray(got.scale).view(np.uint32),
                              np.asarray(want.scale).view(np.uint32))
        assert (got.zero_point is None) == (want.zero_point is None)
        if want.zero_point is not None:
            assert got.zero_point == want.zero_point
            assert got.zero_point.dtype == want.zero_point.dtype
        assert got.scale.shape == () and got.shape == shape
    if nan_policy == "raise":
        bad = x.copy()
        bad.flat[3] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            fq.quantize(bad, dtype, scheme=scheme)
        bad.flat[3] = np.inf
        with pytest.raises(ValueError, match="inf"):
            fq.quantize(bad, dtype, scheme=scheme)


def test_one_thread_dynamic_call_writes_plainly(monkeypatch):
    """Dynamic per-tensor quantization past the cache streams its codes on the threads
    only: on one thread (a busy machine, ``set_num_threads(1)``) the kernel runs with
    plain stores, in the general path and the planned one, with the same bits."""
    from fastq.kernels.cpu.linear import tensor
    x = np.random.default_rng(8).standard_normal(MID_SHAPE, dtype=np.float32)
    want = fq.quantize(x, "uint8")
    monkeypatch.setattr(tensor, "STREAM_ABOVE", 0)
    monkeypatch.setattr(plans, "_plans", {})  # (the general path first, then the plan)
    seen = []
    serial, real_entry_point = tensor._dynamic_serial, tensor.entry_point

    def record(run):
        def recorded(*args):
            seen.append(args[9])  # (the kernels' ``stream``)
            return run(*args)
        return recorded
    monkeypatch.setattr(tensor, "_dynamic_serial", record(serial))
    monkeypatch.setattr(tensor, "entry_point", lambda kernel, *args: record(
        real_entry_point(serial if kernel is tensor._dynamic_serial else kernel, *args)))
    fq.set_num_threads(1)
    try:
        got = [fq.quantize(x, "uint8") for _ in range(3)]
    finally:
        fq.set_num_threads(None)
    for qt in got:
        assert np.array_equal(qt.data, want.data) and qt.scale == want.scale
    assert len(seen) == 3 and not any(seen)


@pytest.mark.parametrize("granularity", [fq.PerChannel(-1), fq.PerChannel(0)],
                         ids=["last axis", "first axis"])
def test_one_call_per_channel_equals_two_passes(granularity, thread_count, monkeypatch):
    """Dynamic per-channel quantization in one call (the parallel kernel on two threads,
    its serial twin on one) gives the bits of separate range and quantize passes."""
    from fastq.ops import quantization
    x = np.random.default_rng(7).standard_normal(MID_SHAPE, dtype=np.float32).T.copy()
    got = fq.quantize(x, "uint8", granularity=granularity)
    with monkeypatch.context() as patch:
        patch.setattr(quantization, "_force_two_passes", True)
        want = fq.quantize(x, "uint8", granularity=granularity)
    assert np.array_equal(got.data, want.data)
    assert np.array_equal(got.scale.view(np.uint32), want.scale.view(np.uint32))
    assert np.array_equal(got.zero_point, want.zero_point)


def test_warmup_runs_parallel_regions_on_a_busy_machine(monkeypatch):
    """``fastq warmup`` compiles the parallel kernels even while the machine is busy
    (where calls would run their serial twins), and gives the count back after."""
    import numba
    monkeypatch.setattr(threads, "_load", dict(threads._load, checked=None, own=0.0))
    monkeypatch.setattr(threads, "system_load", lambda: (50.0, 50.0))
    assert threads.region_threads() == 1
    with threads.every_thread():
        assert threads.region_threads() == numba.config.NUMBA_NUM_THREADS
    assert threads.region_threads() == 1


@pytest.mark.parametrize("granularity", [fq.PerChannel(0), fq.PerChannel(1),
                                         fq.PerGroup(128, axis=1), fq.PerGroup(4, axis=0)],
                         ids=repr)
@pytest.mark.parametrize("dtype,scheme", [("int8", "symmetric"), ("uint8", "asymmetric"),
                                          ("int4", "asymmetric")])
@pytest.mark.parametrize("shape", [(64, 256), (1, 4096)])
def test_repeated_dynamic_call_equals_the_general_path(granularity, dtype, scheme, shape):
    """A repeated dynamic call of any granularity that runs in one kernel call takes the
    planned path (``one_call``: the kernels' prepared call, ``RowsCall``; one
    parameter group, as ``PerChannel(0)`` of a (1, n) input: the per-tensor one), with
    the general path's codes, parameters and errors; so does fake quantization, whose
    values are those of ``dequantize(quantize(x))``."""
    x = np.random.default_rng(5).standard_normal(shape, dtype=np.float32)
    x[min(7, shape[0] - 1), :100] *= 50  # (a part of a larger range)
    first = fq.quantize(x, dtype, scheme, granularity)  # (builds the plan)
    plan = plans._host_plan(x, dtype, scheme, granularity, False, "raise", "auto")
    assert plan.one_call and plan.dynamic_call is not None
    assert type(plan.dynamic_call).__name__ == (
        "DynamicTensorCall" if first.scale.size == 1 else "RowsCall")
    again = fq.quantize(x, dtype, scheme, granularity)
    assert np.array_equal(first.data.view(np.uint8), again.data.view(np.uint8))
    assert np.array_equal(first.scale.view(np.uint32), again.scale.view(np.uint32))
    assert (first.zero_point is None) == (again.zero_point is None)
    if first.zero_point is not None:
        assert first.zero_point.dtype == again.zero_point.dtype
        assert np.array_equal(first.zero_point, again.zero_point)
    assert (again.shape, again.granularity, again.dtype) == (x.shape, granularity, dtype)
    for _ in range(2):  # (the second: the plan's fake_call)
        fake = fq.fake_quantize(x, dtype, scheme, granularity)
        assert plan.fake_call is not None
        assert np.array_equal(fake.view(np.uint32), fq.dequantize(first).view(np.uint32))
    for special, word in ((np.nan, "NaN"), (np.inf, "inf")):
        bad = x.copy()
        bad[min(3, shape[0] - 1), 5] = special
        for _ in range(2):
            with pytest.raises(ValueError, match=word):
                fq.fake_quantize(bad, dtype, scheme, granularity)
            kept = fq.fake_quantize(bad, dtype, scheme, granularity, nan_policy="ignore")
            with np.errstate(invalid="ignore"):
                want = fq.dequantize(fq.quantize(bad, dtype, scheme, granularity,
                                                 nan_policy="ignore"))
            assert np.array_equal(kept.view(np.uint32), want.view(np.uint32))
        with pytest.raises(ValueError, match=word):
            fq.quantize(bad, dtype, scheme, granularity)
        kept = fq.quantize(bad, dtype, scheme, granularity, nan_policy="ignore")
        again = fq.quantize(bad, dtype, scheme, granularity, nan_policy="ignore")
        assert np.array_equal(kept.data.view(np.uint8), again.data.view(np.uint8))
        assert np.array_equal(kept.scale, again.scale)
