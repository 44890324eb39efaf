"""Kernel caches older than any kernel source are dropped before kernels load
(``fastq.runtime.kernel_cache``): Numba alone would keep machine code that inlined an
older module."""
import os

from fastq.runtime import kernel_cache


def test_stale_cache_files_are_dropped(tmp_path, monkeypatch):
    for folder in ("kernels/cpu", "kernels/cpu/linear", "kernels/cuda", "runtime", "core"):
        (tmp_path / folder / "__pycache__").mkdir(parents=True)
    for name in ("core/formats.py", "runtime/fpenv.py", "runtime/threads.py",
                 "kernels/cpu/quant.py", "kernels/cpu/word.py", "kernels/cpu/linear/rows.py",
                 "kernels/cuda/cast.py"):
        (tmp_path / name).write_text("")
    old = ["kernels/cpu/__pycache__/quant.f-1.py311.nbi",
           "kernels/cpu/linear/__pycache__/rows.f-1.py311.1.nbc",
           "runtime/__pycache__/fpenv._swap-20.py311.nbi"]
    for name in old + ["kernels/cpu/__pycache__/quant.cpython-311.pyc",
                       "kernels/cuda/__pycache__/cast.g-3.py311.nbi"]:
        (tmp_path / name).write_text("")
    for name in old:  # written before the last edit of word.py
        os.utime(tmp_path / name, ns=(10**18, 10**18))
    os.utime(tmp_path / "kernels/cpu/word.py", ns=(2 * 10**18, 2 * 10**18))
    os.utime(tmp_path / "kernels/cuda/__pycache__/cast.g-3.py311.nbi",
             ns=(3 * 10**18, 3 * 10**18))
    monkeypatch.setattr(kernel_cache, "_PACKAGE", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "_done", False)
    kernel_cache.drop_stale()
    assert not any((tmp_path / name).exists() for name in old)
    assert (tmp_path / "kernels/cpu/__pycache__/quant.cpython-311.pyc").exists()  # not Numba's
    assert (tmp_path / "kernels/cuda/__pycache__/cast.g-3.py311.nbi").exists()  # newer than all
    monkeypatch.setattr(kernel_cache, "_PACKAGE", str(tmp_path / "missing"))
    monkeypatch.setattr(kernel_cache, "_done", False)
    kernel_cache.drop_stale()  # (no tree: nothing to do, no error)


FIRST_PARALLEL = """
import numpy as np, fastq as fq
fq.quantize(np.ones(1 << 18, np.float32), "int8", scale=0.02)  # the rows' parallel kernel
"""
REPEATED_SMALL = """
import numpy as np, fastq as fq
{patch}
x = np.linspace(-2, 2, 4096, dtype=np.float32)
codes = [fq.quantize(x, "int8", scale=0.02).data for _ in range(3)]  # (the 2nd: its plan's kernel)
assert all(np.array_equal(c, codes[0]) for c in codes)
print("ok")
"""


def _run(code, cache):
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_kernel_cached_after_its_parallel_callee_loads_anywhere(tmp_path):
    """A kernel that calls a parallel one (the static per-tensor kernel), compiled in a
    process that took the parallel kernel from the cache, is cached without Numba's
    hook that starts the threading layer; a new process must still run it as its first
    kernel that needs the layer (``threads.start_layer``; without it: a segfault)."""
    first = _run(FIRST_PARALLEL, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    for _ in range(2):  # compiles the per-tensor kernel, then loads it
        run = _run(REPEATED_SMALL.format(patch=""), tmp_path)
        assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
