"""The small-call path: below the serial threshold every operation runs in the calling
thread (no parallel region: on a busy machine waking the threads costs milliseconds),
and a repeated call reuses its plan; results are those of the general path."""
import numpy as np
import pytest

import fastq as fq
from fastq.core.layout import SERIAL_BELOW
from fastq.ops import plans
from fastq.runtime import threads

SHAPE = (4, 1024)  # 4K elements, as a model's small tensors


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
        monkeypatch.setattr(threads, "_load", dict(threads._load, checked=None))
        monkeypatch.setattr(threads, "system_load", lambda: (load, runnable))

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
