"""Cold compile (fresh process, empty cache) and first call with a warm cache."""
import subprocess
import sys
import tempfile

SCRIPT = """
import time, numpy as np
import fastq as fq
x = np.ones(1 << 20, np.float32)
t = time.perf_counter(); fq.cast(x, "float16"); fq.quantize(x.reshape(256, -1), "int8")
print(time.perf_counter() - t)
"""


def first_call(cache_dir):
    env = {"NUMBA_CACHE_DIR": cache_dir, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def test_benchmark_compile(benchmark):
    def cold():
        with tempfile.TemporaryDirectory() as d:
            return first_call(d)
    seconds = benchmark.pedantic(cold, rounds=1, iterations=1)
    benchmark.extra_info["first call, empty cache (s)"] = seconds


def test_benchmark_warm_cache(benchmark):
    with tempfile.TemporaryDirectory() as d:
        first_call(d)
        seconds = benchmark.pedantic(lambda: first_call(d), rounds=1, iterations=1)
    benchmark.extra_info["first call, warm cache (s)"] = seconds
