"""Time llama.cpp's C reference quantizers beside fastq and ``gguf.quants``.

Usage::

    python bench/ggml_c_reference.py CHECKOUT [--formats q8_0,q4_0,q4_K] [--size 16M]
                                             [--repeat 7] [--no-dequantize]

``CHECKOUT`` is a ggml or llama.cpp source tree (its ``src/`` or ``ggml/src/`` holds
``ggml-quants.c``).  As ``tests/data/gen_kquant_vectors.py`` does, this cuts
``quantize_row_<fmt>_ref`` and ``dequantize_row_<fmt>`` and the helpers they call out of
``ggml-quants.c``, the float16 conversion out of ``ggml-impl.h`` and takes the block
structs from ``ggml-common.h`` (ggml, MIT licence); builds them with
``gcc -O2 -DNDEBUG -ffp-contract=off`` (a release build's optimisation with plain C float
semantics) into a throwaway shared library in a temporary directory, and calls them with
ctypes.  No C code is kept.

Each format is timed on the same float32 data (Gaussian, rows of 4096) by:

* ``C ref``: the C function, one thread;
* ``gguf``: ``gguf.quants.quantize`` / ``dequantize`` (NumPy, one thread), where it
  implements the format (it does not quantize the K-quants);
* ``fastq 1T`` and ``fastq 2T``: ``fq.quantize`` / ``fq.dequantize`` with
  ``fq.set_num_threads(1)`` and ``(2)``.

The implementations run interleaved (the order rotated each round), ``--repeat``
rounds; each row reports the median
of the CPU time (``time.thread_time``, the process's for "fastq 2T": what the cores
spent, the fair measure on a shared machine) and of the wall-clock time, Gelem/s of the CPU time, and fastq's speed
relative to the row (``ratio``: that row's CPU time over fastq 1T's; a format fastq
lacks is timed against the C reference alone).  A ``copy`` row
times ``np.copyto`` of half as many bytes as the float32 input and the block bytes
together, so that it reads and writes as many bytes as the quantizer: the memory speed
bound.  fastq's bytes are compared with the C reference's and the result printed
(``same bytes``).
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# this checkout's fastq, not an installed one
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LEGACY = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
KQUANTS = ("q2_K", "q3_K", "q4_K", "q5_K", "q6_K")
BLOCK = {**{f: 32 for f in LEGACY}, **{f: 256 for f in KQUANTS}}
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24,
               "q2_K": 84, "q3_K": 110, "q4_K": 144, "q5_K": 176, "q6_K": 210}
# static helpers of ggml-quants.c that the reference quantizers call (those present in
# the checkout are cut; unused ones only cost a warning)
HELPERS = ("nearest_int", "make_qx_quants", "make_q3_quants", "make_qkx1_quants",
           "make_qkx2_quants", "make_qp_quants", "get_scale_min_k4")
HALF = ("fp32_from_bits", "fp32_to_bits", "ggml_compute_fp16_to_fp32",
        "ggml_compute_fp32_to_fp16")

PRELUDE = r"""
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#define GROUP_MAX_EPS 1e-15f
#define GGML_RESTRICT restrict
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
typedef uint16_t ggml_fp16_t;
"""
GLUE = r"""
#define GGML_FP32_TO_FP16(x) ggml_compute_fp32_to_fp16(x)
#define GGML_FP16_TO_FP32(x) ggml_compute_fp16_to_fp32(x)
#define GGML_CPU_FP32_TO_FP16(x) ggml_compute_fp32_to_fp16(x)
#define GGML_CPU_FP16_TO_FP32(x) ggml_compute_fp16_to_fp32(x)
"""


def cut(source, name):
    """The text of the C function ``name`` (its signature to its closing brace), or None."""
    m = re.search(r"^[^\n;{}#]*\b" + name + r"\s*\([^;{]*\)\s*\{", source, re.M)
    if m is None:
        return None
    depth, i = 0, m.end() - 1
    while True:
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        i += 1
        if depth == 0:
            return source[m.start():i]


def source_dir(checkout):
    for d in ("ggml/src", "src"):
        if os.path.exists(os.path.join(checkout, d, "ggml-quants.c")):
            return os.path.join(checkout, d)
    raise SystemExit(f"no ggml-quants.c under {checkout}/src or {checkout}/ggml/src")


def build(checkout, workdir, formats):
    """Compile the reference functions of ``formats``; returns (ctypes library,
    {format: (quantize function or None, dequantize function or None)})."""
    src = source_dir(checkout)
    quants = open(os.path.join(src, "ggml-quants.c")).read()
    # (keep the portable branch of the loops that an Apple linker workaround doubles)
    quants = re.sub(r"#ifdef HAVE_BUGGY_APPLE_LINKER.*?#else\n(.*?)#endif\n", r"\1", quants,
                    flags=re.S)
    impl = open(os.path.join(src, "ggml-impl.h")).read()
    code = PRELUDE + "\n".join(cut(impl, f) for f in HALF) + GLUE
    code += "\n".join(t for t in (cut(quants, f) for f in HELPERS) if t)
    found = {}
    for fmt in formats:
        names = (f"quantize_row_{fmt}_ref", f"dequantize_row_{fmt}")
        texts = [cut(quants, n) for n in names]
        code += "\n".join(t for t in texts if t) + "\n"
        found[fmt] = tuple(n if t else None for n, t in zip(names, texts))
    c_path, so_path = os.path.join(workdir, "ref.c"), os.path.join(workdir, "ref.so")
    with open(c_path, "w") as f:
        f.write(code)
    include = os.path.join(os.path.dirname(src), "include")
    subprocess.run(["gcc", "-O2", "-DNDEBUG", "-ffp-contract=off", "-fno-fast-math",
                    "-std=gnu11", "-Werror=implicit-function-declaration", "-w", "-shared",
                    "-fPIC", "-I", src, "-I", include, "-o", so_path, c_path, "-lm"],
                   check=True)
    lib = ctypes.CDLL(so_path)
    return lib, {fmt: tuple(getattr(lib, n) if n else None for n in names)
                 for fmt, names in found.items()}


def c_call(fn, src, dst, n):
    fn(src.ctypes.data_as(ctypes.c_void_p), dst.ctypes.data_as(ctypes.c_void_p),
       ctypes.c_int64(n))


def measure(impls, repeat):
    """{name: (median CPU s, median wall s)}: each callable once per round, interleaved,
    the order rotated by one each round.
    CPU time is the calling thread's (``time.thread_time``: idle worker threads of an
    earlier parallel call cannot leak into it), the whole process's for the rows that
    run on several threads (names ending in "2T")."""
    cpu = {k: [] for k in impls}
    wall = {k: [] for k in impls}
    for name, fn in impls.items():  # warm-up (compiles, first-touch of outputs)
        fn()
    names = list(impls)
    for r in range(repeat):
        # (each round starts one row further on, so that no row always runs right after
        # the same neighbour, such as gguf's, whose large temporaries evict the caches)
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = impls[name]
            clock = time.process_time if name.endswith("2T") else time.thread_time
            c0, w0 = clock(), time.perf_counter()
            fn()
            cpu[name].append(clock() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in impls}


def threads(fq, n, fn):
    def run():
        fq.set_num_threads(n)
        try:
            return fn()
        finally:
            fq.set_num_threads(None)
    return run


def report(title, n, results):
    base = results["fastq 1T" if "fastq 1T" in results else "C ref"][0]
    print(f"\n{title}  ({n} elements)")
    print(f"  {'impl':<10} {'cpu ms':>9} {'wall ms':>9} {'Gelem/s':>8} {'ratio':>7}")
    for name, (cpu, wall) in results.items():
        print(f"  {name:<10} {cpu * 1e3:9.2f} {wall * 1e3:9.2f} {n / max(cpu, 1e-9) / 1e9:8.3f} "
              f"{cpu / base:7.2f}")


def run(checkout, formats, size, repeat, dequantize=True):
    import fastq as fq
    from fastq.ops.blocks import FORMATS
    try:
        import gguf.quants
    except ImportError:
        gguf = None
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as workdir:
        lib, funcs = build(checkout, workdir, formats)
        for fmt in formats:
            qref, dqref = funcs[fmt]
            n = size // 4096 * 4096 if fmt in LEGACY else size // 256 * 256
            x = rng.standard_normal(n).astype(np.float32).reshape(-1, 4096 if n >= 4096 else n)
            nbytes = n // BLOCK[fmt] * BLOCK_BYTES[fmt]
            ref_out = np.empty(nbytes, np.uint8)
            qtype = getattr(gguf.GGMLQuantizationType, fmt.upper(), None) if gguf else None
            half = (n * 4 + nbytes) // 2  # a copy of half reads + writes as many bytes
            copy_src, copy_dst = np.ones(half, np.uint8), np.ones(half, np.uint8)
            impls = {}
            if qref is not None:
                impls["C ref"] = lambda: c_call(qref, x, ref_out, n)
            if qtype is not None and fmt in LEGACY:
                impls["gguf"] = lambda: gguf.quants.quantize(x, qtype)
            if fmt in FORMATS:
                impls["fastq 1T"] = threads(fq, 1, lambda: fq.quantize(x, fmt))
                impls["fastq 2T"] = threads(fq, 2, lambda: fq.quantize(x, fmt))
            impls["copy"] = lambda: np.copyto(copy_dst, copy_src)
            with np.errstate(all="ignore"):
                results = measure(impls, repeat)
            if fmt not in FORMATS:
                report(f"{fmt} quantize (not in fastq)", n, results)
                continue
            qt = fq.quantize(x, fmt)
            same = ("n/a" if qref is None else
                    bool(np.array_equal(np.asarray(qt.data).reshape(-1), ref_out)))
            report(f"{fmt} quantize (same bytes as C ref: {same})", n, results)
            if not dequantize:
                continue
            data = np.asarray(qt.data)
            flat = np.ascontiguousarray(data).reshape(-1)
            deq_out = np.empty(n, np.float32)
            impls = {}
            if dqref is not None:
                impls["C ref"] = lambda: c_call(dqref, flat, deq_out, n)
            if qtype is not None:
                impls["gguf"] = lambda: gguf.quants.dequantize(data, qtype)
            impls["fastq 1T"] = threads(fq, 1, lambda: fq.dequantize(qt))
            impls["fastq 2T"] = threads(fq, 2, lambda: fq.dequantize(qt))
            impls["copy"] = lambda: np.copyto(copy_dst, copy_src)
            results = measure(impls, repeat)
            same = ("n/a" if dqref is None else bool(np.array_equal(
                fq.dequantize(qt).reshape(-1).view(np.uint32), deq_out.view(np.uint32))))
            report(f"{fmt} dequantize (same bits as C ref: {same})", n, results)


def parse_size(text):
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper())
    return int(text[:-1]) * scale if scale else int(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkout", help="ggml or llama.cpp source tree")
    p.add_argument("--formats", default=",".join(LEGACY + KQUANTS),
                   help="comma-separated (default: all; those the checkout lacks are skipped)")
    p.add_argument("--size", default="16M", help="elements (K/M suffix), default 16M")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--no-dequantize", action="store_true")
    args = p.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in BLOCK]
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}: choose from {list(BLOCK)}")
    import fastq as fq
    print(f"fastq {fq.__file__}; C reference from {os.path.abspath(args.checkout)}; "
          f"gcc -O2 -DNDEBUG -ffp-contract=off; load average {os.getloadavg()}")
    run(args.checkout, formats, parse_size(args.size), args.repeat, not args.no_dequantize)


if __name__ == "__main__":
    sys.exit(main())
