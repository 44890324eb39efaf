"""Quantization with given parameters, its plan's prepared call against the general
path (``fastq.ops.plans.static_prepared`` swapped for a function that declines), calls
interleaved in one process; medians of N.  Per channel: ``choose_qparams``' symmetric
int8 scales given back, codes and fake values; per tensor: fake values with a float64
scale and a zero point.

    python bench/studies/static_prepared.py [N=201]
"""
import sys
import time

import numpy as np

import fastq as fq
from fastq.ops import plans

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 201
prepared = plans.static_prepared


def declined(*args, **kwargs):
    return None


def compare(name, call):
    """Median us per call of ``call`` by the prepared call and by the general path."""
    times = {"prepared": [], "general": []}
    call(), call()
    for _ in range(reps):
        for mode, path in (("prepared", prepared), ("general", declined)):
            plans.static_prepared = path
            t = time.perf_counter()
            call()
            times[mode].append(time.perf_counter() - t)
    plans.static_prepared = prepared
    print(f"{name:<44} {np.median(times['prepared']) * 1e6:8.1f} "
          f"{np.median(times['general']) * 1e6:8.1f}", flush=True)


print(f"{'median us per call':<44} {'prepared':>8} {'general':>8}")
rng = np.random.default_rng(0)
for shape in ((4, 1024), (64, 1024), (256, 4096)):
    x = rng.standard_normal(shape).astype(np.float32)
    for g in (fq.PerChannel(0), fq.PerChannel(1)):
        qp = fq.choose_qparams(x, "int8", "symmetric", g)
        compare(f"{shape} {g} codes",
                lambda: fq.quantize(x, "int8", "symmetric", g, scale=qp.scale))
        compare(f"{shape} {g} fake",
                lambda: fq.fake_quantize(x, "int8", "symmetric", g, scale=qp.scale))
for n in (1 << 12, 1 << 16, 3 << 16):
    x = rng.standard_normal(n).astype(np.float32)
    compare(f"({n},) per tensor fake, float64 scale",
            lambda: fq.fake_quantize(x, "int8", scale=0.02, zero_point=3))
