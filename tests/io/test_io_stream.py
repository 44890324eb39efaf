"""`fastq quantize` streams: on a 1 GB model its peak memory stays under twice the
largest tensor plus 200 MB, and it runs at least half as fast as the in-memory API."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fastq as fq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TENSORS, SHAPE = 8, (8192, 4096)  # 8 x 128 MB of float32: 1 GiB


def synthetic_model(path):
    """A 1 GiB safetensors model written tensor by tensor (never all in memory)."""
    from fastq.io.safetensors_file import SafetensorsWriter
    rng = np.random.default_rng(0)
    with SafetensorsWriter(path) as writer:
        for i in range(TENSORS):
            writer.add(f"layers.{i}.weight", rng.standard_normal(SHAPE, np.float32))
        writer.add("position_ids", np.arange(4096)[None])


def child_peak_rss(argv):
    """Run ``python -m fastq argv`` in a child; its wall time and peak RSS (bytes)."""
    # VmHWM: the peak of this process's own memory (ru_maxrss would carry the parent's
    # peak over fork and exec)
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); from fastq.cli import main; "
            "rc = main(sys.argv[1:]); "
            "print('PEAK', next(s.split()[1] for s in open('/proc/self/status') "
            "if s.startswith('VmHWM'))); sys.exit(rc)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=1200)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    peak = int(next(s for s in done.stdout.splitlines() if s.startswith("PEAK")).split()[1])
    return wall, peak * 1024


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["dynamic_range", "int4_weight_only"])
def test_a_1gb_model_streams_within_memory_and_speed(tmp_path, recipe):
    source = tmp_path / "big.safetensors"
    synthetic_model(source)
    largest = np.prod(SHAPE) * 4
    # warm the kernels' disk cache, so neither run below pays for compiling
    fq.quantize_model({"w": np.ones((256, 256), np.float32)}, recipe=recipe)
    wall, peak = child_peak_rss(["quantize", str(source), "-o", str(tmp_path / "out.safetensors"),
                                 "--recipe", recipe])
    assert peak < 2 * largest + (200 << 20), f"peak RSS {peak / 2**20:.0f} MB"
    start = time.perf_counter()  # the in-memory API on the same tensors, read whole
    model = {n: np.array(a) for n, a in fq.load(source).items()}
    fq.quantize_model(model, recipe=recipe)
    in_memory = time.perf_counter() - start
    print(f"\n{recipe}: fastq quantize {wall:.1f} s (peak {peak / 2**20:.0f} MB), "
          f"in-memory {in_memory:.1f} s")
    assert wall < 2 * in_memory + 5  # (+5 s: the child's interpreter and imports)


@pytest.mark.parametrize("recipe", ["dynamic_range", "int4_weight_only", "float16", "q4_0"])
def test_sqnr_by_slices_of_rows_equals_the_reports(monkeypatch, recipe):
    import fastq.io.convert as convert
    from fastq.ops.blocks import FORMATS
    if recipe not in FORMATS and recipe == "q4_0":
        pytest.skip("no GGML formats registered")
    monkeypatch.setattr(convert, "CHUNK_BYTES", 1 << 12)  # many slices, a partial last one
    x = np.random.default_rng(0).standard_normal((77, 256)).astype(np.float32)
    model = fq.quantize_model({"w": x}, recipe=recipe)
    expected = model.report().rows[0]["sqnr_db"]
    assert convert.streamed_sqnr(x, model.tensors["w"]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("granularity", [fq.PerTensor(), fq.PerChannel(0), fq.PerChannel(1),
                                         fq.PerGroup(32, axis=0), fq.PerBlock((3, 64))])
@pytest.mark.parametrize("dtype", ["int4", "uint2"])  # packed: rows split at whole bytes
def test_sqnr_by_slices_for_every_granularity(monkeypatch, granularity, dtype):
    import fastq.io.convert as convert
    monkeypatch.setattr(convert, "CHUNK_BYTES", 1 << 12)
    x = np.random.default_rng(1).standard_normal((77, 256)).astype(np.float32)
    qt = fq.quantize(x, dtype, granularity=granularity)
    expected = fq.metrics(x, qt.dequantize()).sqnr_db
    assert convert.streamed_sqnr(x, qt) == pytest.approx(expected, abs=1e-9)
