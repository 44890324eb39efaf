"""Per-call time of small fastq calls beside torch's, interleaved in one process
(alternating calls on the same data), medians of N calls: wall clock and the calling
thread's CPU time (steadier on a shared machine).  Both single-threaded, so the numbers
are the per-call path and the serial kernel, not thread pools waking up.

    NUMBA_NUM_THREADS=1 python bench/studies/small_calls.py [N=300] [SIZES=4096 65536]
"""
import sys, time, statistics, warnings
import numpy as np
import torch
import fastq as fq
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
sizes = [int(s) for s in sys.argv[2:]] or [4096, 65536]
wall, cpu = time.perf_counter_ns, time.thread_time_ns
print(f"fastq from {fq.__file__}; torch {torch.__version__} threads {torch.get_num_threads()}")
print(f"{'elements':>8} {'operation':<15} {'fastq wall':>10} {'torch wall':>10} {'ratio':>6} {'fastq cpu':>10} {'torch cpu':>10} {'ratio':>6}")
for n in sizes:
    x = np.random.default_rng(0).standard_normal((4, n // 4), dtype=np.float32)
    t = torch.from_numpy(x)
    qt = fq.quantize(x, "int8", scale=0.02, zero_point=3)
    tq = torch.quantize_per_tensor(t, 0.02, 3, torch.qint8)
    rows = {
        "static int8": (lambda: fq.quantize(x, "int8", scale=0.02, zero_point=3),
                        lambda: torch.quantize_per_tensor(t, 0.02, 3, torch.qint8)),
        "dynamic uint8": (lambda: fq.quantize(x, "uint8"),
                          lambda: torch.quantize_per_tensor_dynamic(t, torch.quint8, False)),
        "cast bfloat16": (lambda: fq.cast(x, "bfloat16"), lambda: t.to(torch.bfloat16)),
        "cast float16": (lambda: fq.cast(x, "float16"), lambda: t.to(torch.float16)),
        "dequantize": (lambda: fq.dequantize(qt), lambda: tq.dequantize()),
    }
    for name, (f, g) in rows.items():
        for _ in range(50): f(); g()
        a, b, ca, cb = [], [], [], []
        for _ in range(N):
            c0 = cpu(); t0 = wall(); f(); t1 = wall(); c1 = cpu(); g(); t2 = wall(); c2 = cpu()
            a.append(t1 - t0); b.append(t2 - t1); ca.append(c1 - c0); cb.append(c2 - c1)
        m = [statistics.median(v) / 1e3 for v in (a, b, ca, cb)]
        print(f"{n:>8} {name:<15} {m[0]:8.1f}us {m[1]:8.1f}us {m[0]/m[1]:6.2f} {m[2]:8.1f}us {m[3]:8.1f}us {m[2]/m[3]:6.2f}")
