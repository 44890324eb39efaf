"""``fastq warmup``: compile kernels into the on-disk cache ahead of time (a Docker build
step, a cluster's workers before their first task), one line per kernel family."""
import sys
import time

import numpy as np

# The operations a model's quantization calls most: float32 input, 8- and 4-bit codes,
# per tensor, per channel on either axis, groups along the last axis.  ``--all`` adds
# every input dtype, code dtype, granularity and rounding.
COMMON_DTYPES = ("int8", "uint8", "int4")
ALL_DTYPES = ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2")


def _granularities(fq, everything):
    common = ["tensor", fq.PerChannel(0), fq.PerChannel(-1), fq.PerGroup(32)]
    return common + [fq.PerGroup(32, axis=0), fq.PerBlock((32, 32))] if everything else common


def _inputs(everything):
    """Arrays of both sizes that matter: below the serial threshold (calling thread) and
    above it (parallel kernels), in every input dtype asked for."""
    small = np.linspace(-1, 1, 16 * 64, dtype=np.float32).reshape(16, 64)
    large = np.linspace(-1, 1, 512 * 256, dtype=np.float32).reshape(512, 256)
    out = [small, large]
    if everything:
        import ml_dtypes
        out += [a.astype(t) for a in (small, large)
                for t in (np.float16, ml_dtypes.bfloat16, np.float64)]
    return out


def _cast(fq, everything):
    for x in _inputs(False):
        for to in ("float16", "bfloat16"):
            y = fq.cast(x, to)
            fq.cast(y, "float32")
            if everything:
                fq.cast(x, to, rounding="truncate")
                fq.cast(x, to, rounding="stochastic", seed=0)
                fq.cast(x.astype(np.float64), to)
                fq.cast(y, "float64")


def _quantize(fq, everything):
    dtypes = ALL_DTYPES if everything else COMMON_DTYPES
    for x in _inputs(everything):
        for dtype in dtypes:
            for g in _granularities(fq, everything):
                for scheme in ("asymmetric", "symmetric"):
                    qt = fq.quantize(x, dtype, scheme=scheme, granularity=g)
                    fq.quantize(x, dtype, scheme=scheme, granularity=g, scale=qt.scale,
                                zero_point=qt.zero_point)
                    fq.dequantize(qt)
                    fq.fake_quantize(x, dtype, scheme=scheme, granularity=g)


def _pack(fq, everything):
    for bits in ((4, 2) if everything else (4,)):
        for n in (1024, 1 << 17):
            for dtype in (np.int8, np.uint8):
                codes = np.zeros(n, dtype)
                fq.unpack(fq.pack(codes, bits=bits), bits=bits, count=n,
                          signed=dtype == np.int8)


def _metrics(fq, everything):
    for x in _inputs(False):
        fq.metrics(x, x)


FAMILIES = {"cast": _cast, "quantize": _quantize, "pack": _pack, "metrics": _metrics}


def warmup(families=None, everything=False, stream=None):
    """Run each kernel family's calls once (compiling what the cache lacks); returns
    ``{family: seconds}`` and prints one line per family to ``stream``: the wall
    seconds, the CPU seconds of this process (the number to compare on a busy machine)
    and how many kernel specializations (a fastq kernel for one set of argument types)
    it compiled rather than loaded from the cache."""
    from numba.core import event

    from .. import ops as fq
    from ..runtime import threads
    stream = sys.stderr if stream is None else stream
    families = list(FAMILIES) if not families else families
    for name in families:
        if name not in FAMILIES:
            raise ValueError(f"unknown kernel family {name!r}: choose from "
                             f"{', '.join(FAMILIES)}")
    seconds, compiled = {}, _compile_counter()
    event.register("numba:compile", compiled)
    try:
        with threads.every_thread():  # (the parallel kernels too, on a busy machine)
            for name in families:
                print(f"fastq warmup: {name} ...", end="", file=stream, flush=True)
                t0, cpu0, n0 = time.perf_counter(), time.process_time(), compiled.count
                FAMILIES[name](fq, everything)
                seconds[name] = time.perf_counter() - t0
                print(f" {seconds[name]:.1f} s (CPU {time.process_time() - cpu0:.1f} s, "
                      f"{compiled.count - n0} kernels compiled)", file=stream, flush=True)
    finally:
        event.unregister("numba:compile", compiled)
    return seconds


def _compile_counter():
    """A Numba event listener counting the fastq kernels it sees compiled (callees
    included; Numba's own helpers not)."""
    from numba.core import event

    class Counter(event.Listener):
        count = 0

        def on_start(self, ev):
            pass

        def on_end(self, ev):
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            if getattr(func, "__module__", "").startswith("fastq."):
                self.count += 1

    return Counter()
