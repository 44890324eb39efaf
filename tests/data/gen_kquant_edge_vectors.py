"""Generate tests/data/kquant_edge_vectors.npz: super-blocks on which a q6_K search that
skips the lower clamp of the candidate ``is = 5`` (``-(32 + 0.5) / max``) gives other
bytes than llama.cpp.  There ``fl(fl(-32.5 / max) * max)`` can fall below -32.5, so the
largest element's code rounds to -33 before C's clamp to -32; it happens in about 1 in
100000 Gaussian sub-blocks, and in none of ``kquant_vectors.npz``.

Usage: python tests/data/gen_kquant_edge_vectors.py LLAMA_CPP_OR_GGML_CHECKOUT

The super-blocks are four of the nine such ones in ``bench/ggml_c_reference.py``'s q6_K
data at 16M elements (the third ``standard_normal(16M)`` of ``default_rng(0)``); their
bytes for q4_K, q5_K and q6_K come from the C reference built by
``gen_kquant_vectors.build`` (same source cut, same flags).
"""
import ctypes
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_kquant_vectors import BLOCK_BYTES, build  # noqa: E402

SUPER_BLOCKS = (8025, 10986, 15604, 22785)
FORMATS = ("q4_K", "q5_K", "q6_K")


def edge_input():
    rng = np.random.default_rng(0)
    n = 16 << 20
    for _ in range(2):
        rng.standard_normal(n)
    x = rng.standard_normal(n).astype(np.float32).reshape(-1, 256)
    return np.ascontiguousarray(x[list(SUPER_BLOCKS)].reshape(-1))


def main(checkout, out_path):
    x = edge_input()
    arrays = {"x/q6_K_lower_clamp": x}
    with tempfile.TemporaryDirectory() as workdir:
        lib = build(checkout, workdir)
        for fmt in FORMATS:
            out = np.zeros(x.size // 256 * BLOCK_BYTES[fmt], np.uint8)
            getattr(lib, f"quantize_row_{fmt}_ref")(
                x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int64(x.size))
            arrays[f"{fmt}/q6_K_lower_clamp"] = out
    np.savez_compressed(out_path, **arrays)
    print(f"wrote {out_path}: {len(arrays)} arrays")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1], os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "kquant_edge_vectors.npz"))
