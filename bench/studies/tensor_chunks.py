"""Per-tensor quantization and dequantization on the threads against in the calling
thread, at the sizes around ``TENSOR_PARALLEL_FROM`` (``fastq.kernels.cpu.linear.tensor``)
and ``DEQUANTIZE_PARALLEL_FROM`` (``fastq.kernels.cpu.quant``): the same repeated call
(static int8, dynamic uint8, dynamic fake uint8, dequantize int8), its plan's prepared
call swapped between one laid out in chunks and one of a single chunk (the serial
kernel), interleaved in one process; medians of N calls.  ``company`` puts a ``torch.quantize_per_tensor`` call before each
(torch's OpenMP threads then still spin when fastq's region starts).

    python bench/studies/tensor_chunks.py [N=151] [company]
"""
import sys
import time
import warnings

import numpy as np

import fastq as fq
from fastq.kernels.cpu.linear import tensor
from fastq.kernels.cpu.quant import DequantizeCall
from fastq.ops import linear, plans

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 151
company = "company" in sys.argv[2:]
if company:
    import torch
    warnings.filterwarnings("ignore", message=".*deprecated.*")


def prepared(x, dtype):
    """The cached plan of ``fq.quantize(x, dtype)``'s arguments (both paths share it)."""
    return plans.cached(plans.plan_key(x, dtype, "asymmetric", "tensor", False, "raise",
                                       "auto"))


class DequantizePlan:
    """The dequantize plan of ``qt``'s arguments, its call settable as ``.call``."""

    def __init__(self, qt):
        self.key = next(key for key, plan in linear._dequantize_plans.items()
                        if plan and key[0] == qt.data.shape and key[3] == qt.dtype)

    @property
    def call(self):
        return linear._dequantize_plans[self.key][0]

    @call.setter
    def call(self, call):
        plan = linear._dequantize_plans[self.key]
        linear._dequantize_plans[self.key] = (call,) + plan[1:]


def dequantize_call(n, nchunks):
    """A prepared dequantization of ``n`` int8 codes per tensor in ``nchunks`` (0: serial)."""
    call = DequantizeCall((1, 1, n), (1, 1, n), 1)
    call.nchunks = nchunks
    return call


def in_chunks(make, nchunks):
    """The prepared call ``make()`` builds, laid out for ``nchunks`` chunks."""
    saved = tensor.tensor_chunks
    tensor.tensor_chunks = lambda size: nchunks
    try:
        return make()
    finally:
        tensor.tensor_chunks = saved


print(f"median us per call, parallel / serial{', torch between calls' if company else ''}")
for n in (1 << 16, 1 << 17, 3 << 16, 1 << 18, 3 << 17, 1 << 19):
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    calls = {"static int8": lambda: fq.quantize(x, "int8", scale=0.03),
             "dynamic uint8": lambda: fq.quantize(x, "uint8"),
             "fake uint8": lambda: fq.fake_quantize(x, "uint8"),
             "dequantize int8": lambda: fq.dequantize(qt)}
    qt = fq.quantize(x, "int8", scale=0.03)
    for call in calls.values():
        call(), call()  # (compiled, plans cached)
    static, dynamic = prepared(x, "int8"), prepared(x, "uint8")
    makers = {  # (plan slot, how to build its prepared call)
        "static int8": (static, "tensor_call", lambda: tensor.TensorCall(
            static.shape, static.code_dtype, static.qmin, static.qmax, static.bits)),
        "dynamic uint8": (dynamic, "dynamic_call", lambda: tensor.DynamicTensorCall(
            dynamic.shape, dynamic.code_dtype, dynamic.qmin, dynamic.qmax, dynamic.bits,
            False, False)),
        "fake uint8": (dynamic, "fake_call", lambda: tensor.DynamicTensorCall(
            dynamic.shape, np.float32, dynamic.qmin, dynamic.qmax, 8, False, False)),
        "dequantize int8": (DequantizePlan(qt), "call", None)}
    chunks = {"parallel": max(2, n // tensor.ROW), "serial": 1}
    laid_out = {(name, mode): in_chunks(make, nchunks)
                for name, (_, _, make) in makers.items() if make
                for mode, nchunks in chunks.items()}
    for mode, nchunks in chunks.items():
        laid_out[("dequantize int8", mode)] = dequantize_call(n, nchunks if nchunks > 1 else 0)
    times = {(name, mode): [] for name in calls for mode in chunks}
    before = (lambda: torch.quantize_per_tensor(torch.from_numpy(x), 0.03, 0, torch.qint8)) \
        if company else (lambda: None)
    for _ in range(reps):
        for name, call in calls.items():
            for mode in chunks:
                plan, slot, _ = makers[name]
                setattr(plan, slot, laid_out[(name, mode)])
                before()
                t = time.perf_counter()
                call()
                times[(name, mode)].append(time.perf_counter() - t)
    print(f"{n:>8}  " + "  ".join(
        f"{name} {np.median(times[(name, 'parallel')]) * 1e6:.1f} / "
        f"{np.median(times[(name, 'serial')]) * 1e6:.1f}" for name in calls), flush=True)
