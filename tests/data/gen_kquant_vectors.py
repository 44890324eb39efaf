"""Generate tests/data/kquant_vectors.npz from llama.cpp's reference K-quant quantizer.

Usage: python tests/data/gen_kquant_vectors.py LLAMA_CPP_OR_GGML_CHECKOUT

Cuts ``quantize_row_q2_K_ref``, ``quantize_row_q3_K_ref``, ``quantize_row_q4_K_ref``,
``quantize_row_q5_K_ref``, ``quantize_row_q6_K_ref`` and the helpers they call
(``nearest_int``, ``make_qx_quants``, ``make_q3_quants``, ``make_qkx2_quants``,
``get_scale_min_k4``) out of ``ggml-quants.c``, and the float16 conversion out of
``ggml-impl.h`` (ggml, MIT licence), of the checkout given; compiles them with gcc into a
throwaway shared library in a temporary directory, as a release build does but with
plain C float semantics (``-O2 -DNDEBUG -ffp-contract=off``: no fast math, no FMA
contraction); runs them on the inputs below and writes the inputs and the block bytes.
The vectors in the repository came from ggml commit d99724f2 (August 2026).
No C code is kept.
"""
import ctypes
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

FUNCTIONS = ("nearest_int", "make_qx_quants", "make_q3_quants", "make_qkx2_quants",
             "get_scale_min_k4", "quantize_row_q2_K_ref", "quantize_row_q3_K_ref",
             "quantize_row_q4_K_ref", "quantize_row_q5_K_ref", "quantize_row_q6_K_ref")
HALF = ("fp32_from_bits", "fp32_to_bits", "ggml_compute_fp16_to_fp32",
        "ggml_compute_fp32_to_fp16")
BLOCK_BYTES = {"q2_K": 84, "q3_K": 110, "q4_K": 144, "q5_K": 176, "q6_K": 210}

PRELUDE = r"""
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#define QK_K 256
#define K_SCALE_SIZE 12
#define GROUP_MAX_EPS 1e-15f
#define GGML_RESTRICT restrict
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
typedef uint16_t ggml_fp16_t;
typedef uint16_t ggml_half;
typedef struct { uint8_t scales[QK_K/16]; uint8_t qs[QK_K/4]; ggml_half d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K/8]; uint8_t qs[QK_K/4]; uint8_t scales[12];
                 ggml_half d; } block_q3_K;
typedef struct { ggml_half d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K/2]; } block_q4_K;
typedef struct { ggml_half d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K/8];
                 uint8_t qs[QK_K/2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K/2]; uint8_t qh[QK_K/4]; int8_t scales[QK_K/16];
                 ggml_half d; } block_q6_K;
"""
GLUE = r"""
#define GGML_FP32_TO_FP16(x) ggml_compute_fp32_to_fp16(x)
#define GGML_FP16_TO_FP32(x) ggml_compute_fp16_to_fp32(x)
"""


def cut(source, name):
    """The text of the C function ``name`` (its signature to its closing brace)."""
    m = re.search(r"^[^\n;{}]*\b" + name + r"\s*\([^;{]*\)\s*\{", source, re.M)
    if m is None:
        raise SystemExit(f"{name} not found")
    depth, i = 0, m.end() - 1
    while True:
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        i += 1
        if depth == 0:
            return source[m.start():i]


def build(checkout, workdir):
    src = next(os.path.join(checkout, d) for d in ("ggml/src", "src")
               if os.path.exists(os.path.join(checkout, d, "ggml-quants.c")))
    quants = open(os.path.join(src, "ggml-quants.c")).read()
    # (keep the portable branch of the loops that an Apple linker workaround doubles)
    quants = re.sub(r"#ifdef HAVE_BUGGY_APPLE_LINKER.*?#else\n(.*?)#endif\n", r"\1", quants,
                    flags=re.S)
    impl = open(os.path.join(src, "ggml-impl.h")).read()
    code = PRELUDE + "\n".join(cut(impl, f) for f in HALF) + GLUE
    code += "\n".join(cut(quants, f) for f in FUNCTIONS)
    c_path, so_path = os.path.join(workdir, "kq.c"), os.path.join(workdir, "kq.so")
    with open(c_path, "w") as f:
        f.write(code)
    subprocess.run(["gcc", "-O2", "-DNDEBUG", "-ffp-contract=off", "-fno-fast-math", "-std=gnu11",
                    "-Werror=implicit-function-declaration", "-shared", "-fPIC", "-o", so_path,
                    c_path, "-lm"], check=True)
    return ctypes.CDLL(so_path)


def inputs(seed=12345):
    """Named float32 inputs, each a whole number of super-blocks (256)."""
    rng = np.random.default_rng(seed)
    n = 256
    t = rng.standard_t(2, 2 * n)
    sparse = rng.standard_normal(n) * (rng.random(n) < 0.1)
    mixed = rng.standard_normal(n)
    mixed[32:96] = 0  # whole sub-blocks of zeros inside a super-block
    mixed[160:192] = 0.75  # and a constant one
    named = {
        "gaussian": rng.standard_normal(4 * n),
        "heavy_tailed": t,
        "cauchy": np.clip(rng.standard_cauchy(n), -1e3, 1e3),
        "all_zero": np.zeros(n),
        "constant_positive": np.full(n, 0.3125),
        "constant_negative": np.full(n, -2.5),
        "tiny": rng.standard_normal(n) * 1e-30,
        "subnormal": rng.standard_normal(n) * 1e-39,
        "huge": rng.standard_normal(n) * 3e3,
        "negative_only": -np.abs(rng.standard_normal(n)),
        "positive_only": np.abs(rng.standard_normal(n)) + 0.5,
        "sparse": sparse,
        "mixed_blocks": mixed,
        "grid_ties": rng.integers(-16, 17, n) * 0.25,
    }
    # (drawn after the others, so that those stay the same inputs as before)
    named["offset"] = 5 + 0.01 * rng.standard_normal(n)  # a min far from 0 (q2_K's dmin)
    named["grid_q3"] = rng.integers(-4, 4, n) * 0.5  # q3_K's own grid: ties and exact fits
    # sub-blocks of 16 whose magnitudes span six decades (the 4/6-bit sub-block scales)
    # (two super-blocks: the inputs together stay an even number of them)
    named["decades"] = (rng.standard_normal(2 * n)
                        * np.repeat(10.0 ** rng.uniform(-3, 3, n // 8), 16))
    return named


def main(checkout, out_path):
    with tempfile.TemporaryDirectory() as workdir:
        lib = build(checkout, workdir)
        arrays = {}
        for name, x in inputs().items():
            x = np.ascontiguousarray(x, np.float32)
            arrays[f"x/{name}"] = x
            for fmt, nbytes in BLOCK_BYTES.items():
                out = np.zeros(x.size // 256 * nbytes, np.uint8)
                getattr(lib, f"quantize_row_{fmt}_ref")(
                    x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                    ctypes.c_int64(x.size))
                arrays[f"{fmt}/{name}"] = out
    np.savez_compressed(out_path, **arrays)
    print(f"wrote {out_path}: {len(arrays)} arrays")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1], os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "kquant_vectors.npz"))
