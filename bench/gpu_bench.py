"""GPU benchmark of fastq's CUDA backend: ``python bench/gpu_bench.py``.

Times every CUDA kernel through the public API on device arrays (data stays on the GPU)
against a device-to-device copy moving the same bytes (read + write, the memory bound)
and against the PyTorch CUDA equivalent where there is one, then writes a markdown table
with the GPU name and the date to ``bench/RESULTS.md``.

Options: ``--elements N`` (default 2**26 float32 values), ``--reps R``, ``--out PATH``.
Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) it runs as a smoke test only:
give a small ``--elements`` and an ``--out`` elsewhere.
"""
import argparse
import datetime
import os
import statistics
import sys
import time
from functools import partial

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastq as fq  # noqa: E402


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def timed(fn, sync, reps):
    """Median seconds of ``fn()`` (after two warm-up calls), the device synchronized."""
    fn()
    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_int4_groups(torch, x, group):
    """int4 symmetric per-group quantization and nibble packing in plain torch ops."""
    g = x.view(-1, group)
    scale = g.abs().amax(dim=1, keepdim=True) / 7
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(g / scale), -8, 7).to(torch.int8)
    packed = (q[:, 0::2] & 0xF) | (q[:, 1::2] << 4)
    return packed, scale


def torch_metrics(tx, tx_hat):
    """mae, mse, max|e|, sqnr and cosine in float64 torch ops (one result per statistic)."""
    a, b = tx.double(), tx_hat.double()
    e = a - b
    return (e.abs().mean(), (e * e).mean(), e.abs().max(),
            10 * ((a * a).sum() / (e * e).sum()).log10(),
            (a * b).sum() / ((a * a).sum().sqrt() * (b * b).sum().sqrt()))


def cases(n, torch):
    """(name, bytes read + written, fastq call, torch call or None) for each kernel."""
    from numba import cuda

    # backend="cuda" spelled out: the simulator's device arrays lack the interface "auto" uses
    cast = partial(fq.cast, backend="cuda")
    quantize = partial(fq.quantize, backend="cuda")
    fake_quantize = partial(fq.fake_quantize, backend="cuda")
    dequantize = partial(fq.dequantize, backend="cuda")

    rows = 1024 if n >= 1 << 20 else 16
    cols = n // rows
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((rows, cols)).astype(np.float32)
    x = cuda.to_device(x_host)
    h = cast(x, "float16")
    b = cast(x, "bfloat16")
    q8 = quantize(x, "int8", scheme="symmetric", granularity=fq.PerChannel(0))
    q4 = quantize(x, "int4", scheme="symmetric", granularity=fq.PerGroup(128))
    m = rows * cols
    codes = q4.codes().reshape(m)  # int8 codes in [-8, 7], on the device
    packed = fq.pack(codes, bits=4)
    x_hat = dequantize(q8)
    tx = th = tq = tc = tx_hat = None
    if torch is not None:
        tx = torch.from_numpy(x_host).cuda()
        th = tx.half()
        amax = tx.abs().amax(dim=1)
        tq = torch.quantize_per_channel(tx, amax / 127, torch.zeros(rows, dtype=torch.long,
                                        device="cuda"), 0, torch.qint8)
        tc = torch.as_tensor(codes, device="cuda")
        tx_hat = torch.as_tensor(x_hat, device="cuda")

    def per_channel_torch():
        lo, hi = torch.aminmax(tx, dim=1)
        scale = torch.maximum(hi, -lo) / 127
        zp = torch.zeros(rows, dtype=torch.long, device="cuda")
        return torch.quantize_per_channel(tx, scale, zp, 0, torch.qint8)

    t = torch is not None
    return [
        ("cast f32->f16 (RNE)", 6 * m, lambda: cast(x, "float16"),
         (lambda: tx.half()) if t else None),
        ("cast f32->bf16 (RNE)", 6 * m, lambda: cast(x, "bfloat16"),
         (lambda: tx.to(torch.bfloat16)) if t else None),
        ("cast f32->bf16 (stochastic)", 6 * m,
         lambda: cast(x, "bfloat16", rounding="stochastic", seed=1), None),
        ("cast f16->f32", 6 * m, lambda: cast(h, "float32"),
         (lambda: th.float()) if t else None),
        ("cast bf16->f32", 6 * m, lambda: cast(b, "float32"), None),
        ("quantize int8 per-tensor (asym, min/max + codes)", 9 * m,
         lambda: quantize(x, "uint8"),
         (lambda: torch.quantize_per_tensor_dynamic(tx, torch.quint8, False)) if t else None),
        ("quantize int8 per-channel (sym)", 9 * m,
         lambda: quantize(x, "int8", scheme="symmetric", granularity=fq.PerChannel(0)),
         per_channel_torch if t else None),
        ("quantize int4 per-group 128 (sym, packed)", 8.5 * m + m,
         lambda: quantize(x, "int4", scheme="symmetric", granularity=fq.PerGroup(128)),
         (lambda: torch_int4_groups(torch, tx, 128)) if t else None),
        ("fake_quantize int8 per-tensor (given scale)", 8 * m,
         lambda: fake_quantize(x, "int8", scale=np.float32(0.02)),
         (lambda: torch.fake_quantize_per_tensor_affine(tx, 0.02, 0, -128, 127)) if t else None),
        ("dequantize int8 per-channel", 5 * m, lambda: dequantize(q8),
         (lambda: tq.dequantize()) if t else None),
        ("dequantize int4 per-group 128", 4.5 * m + m, lambda: dequantize(q4), None),
        ("pack int4 (int8 codes -> bytes)", 1.5 * m, lambda: fq.pack(codes, bits=4),
         (lambda: (tc[0::2] & 0xF) | (tc[1::2] << 4)) if t else None),
        ("unpack int4", 1.5 * m, lambda: fq.unpack(packed, bits=4, count=m), None),
        ("metrics (exact CPU summation order)", 8 * m, lambda: fq.metrics(x, x_hat),
         (lambda: torch_metrics(tx, tx_hat)) if t else None),
    ] + block_cases(x.reshape(m // 256, 256), m, quantize, dequantize)


# bytes per element of each block format's data and scales
BLOCK_BYTES = {"q8_0": 34 / 32, "q4_0": 18 / 32, "q4_K": 144 / 256, "q6_K": 210 / 256,
               "nf4": 0.5 + 4 / 64, "mxfp8_e4m3": 1 + 1 / 32, "mxfp4": 17 / 32,
               "nvfp4": 0.5 + 1 / 16}


def block_cases(x, m, quantize, dequantize):
    """The block formats' CUDA twins on the device rows ``x`` (256 wide): quantize
    (reads float32, writes the format) and dequantize (the reverse)."""
    out = []
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    for fmt, size in BLOCK_BYTES.items():
        if simulated and fmt not in ("q4_0", "mxfp4"):  # (a smoke run: two formats)
            continue
        qt = quantize(x, fmt)
        out.append((f"quantize {fmt}", (4 + size) * m, partial(quantize, x, fmt), None))
        out.append((f"dequantize {fmt}", (4 + size) * m, partial(dequantize, qt), None))
    return out


def copy_seconds(nbytes, reps):
    """A device-to-device copy reading and writing ``nbytes`` in total."""
    from numba import cuda
    half = max(1, int(nbytes) // 2)
    src = cuda.device_array(half, np.uint8)
    dst = cuda.device_array(half, np.uint8)
    return timed(lambda: dst.copy_to_device(src), cuda.synchronize, reps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 26)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "RESULTS.md"))
    args = parser.parse_args(argv)
    from numba import cuda
    if not cuda.is_available():
        sys.exit("gpu_bench: no CUDA GPU (numba.cuda.is_available() is False)")
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    torch = None if simulated else _torch()
    gpu = "CUDA simulator" if simulated else cuda.get_current_device().name
    gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    lines = ["# fastq GPU benchmark\n",
             f"GPU: **{gpu}**, {datetime.date.today().isoformat()}, "
             f"{args.elements:,} float32 elements, median of {args.reps} runs; "
             f"numba-cuda, torch {torch.__version__ if torch else 'n/a'}.\n",
             "Bandwidth counts the bytes each operation must read and write; the copy "
             "column is a device-to-device copy moving the same bytes.\n",
             "| operation | fastq ms | fastq GB/s | copy GB/s | fastq / copy | torch ms | "
             "fastq vs torch |", "|---|---:|---:|---:|---:|---:|---:|"]
    sync_torch = torch.cuda.synchronize if torch else None
    for name, nbytes, fast, ref in cases(args.elements, torch):
        t = timed(fast, cuda.synchronize, args.reps)
        c = copy_seconds(nbytes, args.reps)
        tt = None
        if ref is not None:
            try:
                tt = timed(ref, sync_torch, args.reps)
            except Exception as exc:  # an op this torch build lacks on CUDA
                print(f"torch reference of {name!r} failed: {exc}", file=sys.stderr)
        torch_cols = f"{tt * 1e3:.3f} | {tt / t:.2f}x" if tt else "n/a | n/a"
        lines.append(f"| {name} | {t * 1e3:.3f} | {nbytes / t / 1e9:.0f} | "
                     f"{nbytes / c / 1e9:.0f} | {c / t:.0%} | {torch_cols} |")
        print(lines[-1], flush=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
