"""The floors under three targets: what the memory or the arithmetic alone costs, beside
what fastq and its peers take, in one process on the same data (medians of N).

* ``read``: 16M float32 read once (fastq's largest-magnitude pass, the first of NVFP4's
  two: the tensor scale needs the whole tensor's amax before any block's scale), beside
  the copy of the bytes that ``fastq bench`` and ``bench/studies/block_float_fractions.py``
  count for NVFP4 (half read, half written; their parallel copy, on all threads).  NVFP4 reads its input twice, so its fraction of that copy
  is at most ``copy / (2 * read)``.
* ``gguf``: ``gguf.quants.quantize`` of q8_0 and q4_0 beside fastq's, on all threads.
  Any quantizer reads its input once, so its speed-up over gguf is at most
  ``gguf / read``.
* ``divide``: a bare float32 division loop over 1M elements in cache (``x / s``, the
  rounding ONNX's QuantizeLinear and fastq use, one thread), beside fastq's static
  per-tensor int8 quantize and ``torch.quantize_per_tensor`` (which multiplies by
  ``1 / scale``), both on one thread.

    python bench/studies/floors.py [N=9]
"""
import statistics
import sys
import time
import warnings

import numpy as np
from numba import njit

import fastq as fq
from fastq.cli.bench import _copy_roof as copy_roof  # (the copy that fastq bench divides by)
from fastq.core.layout import MAX_CHUNKS
from fastq.kernels.cpu.blocks import microscale

N = int(sys.argv[1]) if len(sys.argv) > 1 else 9


def median_ms(fn, repeat=N, clock=time.perf_counter):
    fn()
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times) * 1e3


@njit(nogil=True, error_model="numpy", cache=False)
def divide(x, s, out):  # (error_model "numpy": IEEE division, no zero check; vectorizes)
    for j in range(x.size):
        out[j] = x[j] / s


def read_floor(x):
    top = np.zeros(MAX_CHUNKS, np.uint32)
    n = x.size
    nvfp4_bytes = 4 * n + n // 2 + n // 16
    read = median_ms(lambda: microscale.abs_max_bits(x, top))
    copy = median_ms(copy_roof(nvfp4_bytes))
    nvfp4 = median_ms(lambda: fq.quantize(x.reshape(-1, 4096), "nvfp4"))
    print(f"read 16M float32 once   {read:7.2f} ms")
    print(f"copy of NVFP4's bytes   {copy:7.2f} ms  -> NVFP4 at most {copy / (2 * read):.2f}"
          f" of copy; fastq's NVFP4 {nvfp4:.2f} ms = {copy / nvfp4:.2f}")
    return read


def gguf_floor(x, read):
    try:
        from gguf import GGMLQuantizationType, quants
    except ImportError:
        print("gguf not installed: no gguf rows")
        return
    m = x.reshape(-1, 4096)
    for name in ("q8_0", "q4_0"):
        kind = getattr(GGMLQuantizationType, name.upper())
        peer = median_ms(lambda: quants.quantize(m, kind), 3)
        ours = median_ms(lambda: fq.quantize(m, name))
        print(f"{name}  gguf {peer:7.1f} ms  fastq {ours:6.2f} ms ({peer / ours:4.1f}x)  "
              f"a quantizer that only read its input: {peer / read:4.1f}x")


def division_floor():
    try:
        import torch
    except ImportError:
        print("torch not installed: no division row")
        return
    warnings.filterwarnings("ignore")  # (torch's quantized tensors are deprecated)
    torch.set_num_threads(1)
    fq.set_num_threads(1)
    x = np.random.default_rng(1).standard_normal(1 << 20, dtype=np.float32)
    out = np.empty_like(x)
    xt = torch.from_numpy(x)
    s = np.float32(0.02)
    clock, reps = time.thread_time, max(N, 101)
    rows = {"bare division loop": lambda: divide(x, s, out),
            "fastq static int8": lambda: fq.quantize(x, "int8", scale=0.02, zero_point=3),
            "torch (x * 1/s)": lambda: torch.quantize_per_tensor(xt, 0.02, 3, torch.qint8)}
    for name, fn in rows.items():
        print(f"1M, 1 thread  {name:<19} {median_ms(fn, reps, clock) * 1e3:6.0f} us CPU")
    fq.set_num_threads(None)


if __name__ == "__main__":
    data = np.random.default_rng(0).standard_normal(1 << 24, dtype=np.float32)
    gguf_floor(data, read_floor(data))
    division_floor()
