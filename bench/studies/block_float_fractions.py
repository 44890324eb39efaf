"""Fraction of a plain copy's bandwidth that the block-float formats (OCP MX, NVFP4,
NF4) reach, quantize and dequantize, as ``fastq bench`` counts bytes (read + written;
the copy moves the same number, half read, half written, with the same parallel copy
kernel).  Copy and format calls alternate in one process on the same data; medians of
N.  Single-threaded (``NUMBA_NUM_THREADS=1``) it times CPU time (steadier on a shared
machine); otherwise wall clock.

    NUMBA_NUM_THREADS=1 python bench/studies/block_float_fractions.py [SIZE=16777216] [N=9] [FILTER]
"""
import os
import sys
import time

import numpy as np

import fastq as fq
from fastq.cli.bench import _copy_roof as copy_roof  # (the copy that fastq bench divides by)

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 24
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
only = sys.argv[3] if len(sys.argv) > 3 else ""
threads = int(os.environ.get("NUMBA_NUM_THREADS", "0")) or None
clock = time.process_time if threads == 1 else time.perf_counter
x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
m = x.reshape(-1, 4096) if n % 4096 == 0 else x.reshape(1, -1)
BYTES = {"mxfp8_e4m3": 5 * n + n // 32, "mxfp8_e5m2": 5 * n + n // 32,
         "mxint8": 5 * n + n // 32, "mxfp4": 4 * n + 17 * n // 32,
         "nvfp4": 4 * n + n // 2 + n // 16, "nf4": 4 * n + n // 2 + n // 16}
print(f"{n} float32, {'1 thread, CPU time' if threads == 1 else 'wall clock'}")
for dtype, nbytes in BYTES.items():
    copy = copy_roof(nbytes)
    data = x if dtype == "nf4" else m
    qt = fq.quantize(data, dtype)
    for op, fn in (("quantize", lambda: fq.quantize(data, dtype)),
                   ("dequantize", lambda: fq.dequantize(qt))):
        name = f"{op} {dtype}"
        if only not in name:
            continue
        for _ in range(2):
            fn(), copy()
        t_fq, t_copy = [], []
        for _ in range(reps):
            t0 = clock()
            copy()
            t_copy.append(clock() - t0)
            t0 = clock()
            fn()
            t_fq.append(clock() - t0)
        f, c = np.median(t_fq), np.median(t_copy)
        print(f"{name:<22} fastq {f * 1e3:7.2f} ms  copy {c * 1e3:6.2f} ms  "
              f"of copy {c / f:.2f}", flush=True)
