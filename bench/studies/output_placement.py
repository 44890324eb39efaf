"""Where large outputs go: on a 64-byte cache line (``fastq.runtime.pool``) and past the
cache by non-temporal stores (``STREAM_ABOVE``, ``fastq.kernels.cpu.parallel``), against
the placement before (pool buffers as NumPy places them, 16 bytes past a line, and the
last-level cache as the system reports it), the same call alternating between the two
in one process on the same data; medians of N, wall clock.

    python bench/studies/output_placement.py [SIZE ...] [N=15]

Sizes default to 1M, 4M and 16M float32 elements; a number below 1000 is N.
"""
import sys
import time

import numpy as np

import fastq as fq
from fastq.kernels.cpu import parallel, quant
from fastq.kernels.cpu.linear import tensor
from fastq.runtime import pool

args = [int(a) for a in sys.argv[1:]]
reps = next((a for a in args if a < 1000), 15)
sizes = [a for a in args if a >= 1000] or [1 << 20, 1 << 22, 1 << 24]
line_aligned = pool._line_aligned
reported_cache = parallel._last_level_cache()


def place(now):
    """The placement of this tree (``now``) or the one before, for the next outputs."""
    pool.release()
    pool._line_aligned = line_aligned if now else (lambda size: np.empty(size, np.uint8))
    above = min(reported_cache, parallel.STREAM_CACHE_CAP) if now else reported_cache
    for module in (parallel, quant, tensor):  # (the modules that read it by name)
        if hasattr(module, "STREAM_ABOVE"):
            module.STREAM_ABOVE = above


print(f"last-level cache reported {reported_cache >> 20} MiB; streaming above "
      f"{min(reported_cache, parallel.STREAM_CACHE_CAP) >> 20} MiB now")
for n in sizes:
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32).reshape(-1, 4096)
    half, qt = fq.cast(x, "float16"), fq.quantize(x, "int8", scheme="symmetric")
    mx, q4 = fq.quantize(x, "mxfp8_e4m3"), fq.quantize(x, "q4_0")
    calls = {"cast fp32->fp16": lambda: fq.cast(x, "float16"),
             "cast fp16->fp32": lambda: fq.cast(half, "float32"),
             "quantize static int8": lambda: fq.quantize(x, "int8", scale=0.01, zero_point=0),
             "dequantize int8": lambda: fq.dequantize(qt),
             "quantize mxfp8_e4m3": lambda: fq.quantize(x, "mxfp8_e4m3"),
             "dequantize mxfp8_e4m3": lambda: fq.dequantize(mx),
             "dequantize q4_0": lambda: fq.dequantize(q4)}
    for name, call in calls.items():
        times = {False: [], True: []}
        for now in (False, True):
            place(now)
            call()
        for _ in range(reps):
            for now in (False, True):
                place(now)
                call()  # (takes the pool's new buffer: the timed call reuses it)
                t0 = time.perf_counter()
                call()
                times[now].append(time.perf_counter() - t0)
        before, after = (np.median(times[k]) * 1e3 for k in (False, True))
        print(f"{n:>9} {name:<22} before {before:7.3f} ms  now {after:7.3f} ms  "
              f"now/before {after / before:.2f}", flush=True)
place(True)
