"""GGML block formats: legacy formats byte for byte ``gguf.quants.quantize``, K-quants byte
for byte llama.cpp's reference quantizer (vectors in tests/data, made by
tests/data/gen_kquant_vectors.py), ``fq.dequantize`` bit for bit ``gguf.quants.dequantize``."""
import os
import warnings

import numpy as np
import pytest

import fastq as fq

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402
from gguf.quants import quantize as gguf_quantize  # noqa: E402

LEGACY = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
KQUANTS = ("q4_K", "q5_K", "q6_K")
BITS = {"q8_0": 8.5, "q4_0": 4.5, "q4_1": 5.0, "q5_0": 5.5, "q5_1": 6.0, "q4_K": 4.5,
        "q5_K": 5.5, "q6_K": 6.5625}
VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "kquant_vectors.npz")


def qtype(fmt):
    return getattr(gguf.GGMLQuantizationType, fmt.upper())


def reference(x, fmt):
    with warnings.catch_warnings():  # (gguf's NumPy divides by zero on tiny blocks)
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return gguf_quantize(np.asarray(x, np.float32), qtype(fmt))


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def legacy_inputs():
    rng = np.random.default_rng(7)
    x = {
        "gaussian": rng.standard_normal((6, 256)),
        "heavy_tailed": np.clip(rng.standard_cauchy((4, 64)), -3e3, 3e3),
        "zeros": np.zeros((2, 64)),
        "signed_zeros": np.where(rng.random((4, 32)) < 0.5, -0.0, 0.0),
        "constant": np.full((2, 32), -1.75),
        "negative_only": -np.abs(rng.standard_normal((3, 32))),
        "positive_only": np.abs(rng.standard_normal((3, 32))) + 2,
        "tiny": rng.standard_normal((2, 32)) * 1e-36,
        "subnormal": rng.standard_normal((2, 32)) * 1e-41,
        "smallest": np.full((1, 32), 1e-45),
        "grid_ties": rng.integers(-8, 9, (4, 32)) * 0.5,
        "big": rng.standard_normal((2, 32)) * 1e4,
        "3d": rng.standard_normal((2, 3, 64)),
    }
    x["grid_ties"][:, 0] = 4.0  # d = 0.5 exactly: x * id + 8.5 lands on .5 ties
    x["signed_zeros"][:, 7] = 0.0
    return {k: v.astype(np.float32) for k, v in x.items()}


@pytest.mark.parametrize("fmt", LEGACY)
def test_legacy_bytes_equal_gguf(fmt):
    for name, x in legacy_inputs().items():
        qt = fq.quantize(x, fmt)
        ref = reference(x, fmt)
        assert qt.data.dtype == np.uint8 and np.array_equal(qt.data, ref), name
        assert same_bits(fq.dequantize(qt), gguf_dequantize(ref, qtype(fmt))), name
        assert qt.shape == x.shape and qt.bits_per_element == BITS[fmt]


@pytest.mark.parametrize("fmt", ("q4_0", "q5_1"))
def test_legacy_parallel_and_layouts(fmt):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1040, 1024)).astype(np.float32)  # past the serial size
    ref = reference(x, fmt)
    assert np.array_equal(fq.quantize(x, fmt).data, ref)
    assert np.array_equal(fq.quantize(np.asfortranarray(x), fmt).data, ref)
    assert np.array_equal(fq.quantize(x.astype(np.float64), fmt).data,
                          reference(x.astype(np.float64).astype(np.float32), fmt))
    assert np.array_equal(fq.quantize(x[:, ::-1], fmt).data, reference(x[:, ::-1], fmt))
    h = x[:7].astype(np.float16)
    assert np.array_equal(fq.quantize(h, fmt).data, reference(h.astype(np.float32), fmt))
    qt = fq.quantize(x, fmt)
    assert same_bits(qt.dequantize(), gguf_dequantize(ref, qtype(fmt)))


@pytest.mark.parametrize("fmt", LEGACY)
def test_legacy_streamed_dequantize(monkeypatch, fmt):
    """Outputs past the last-level cache are written by non-temporal stores where the
    output is 16-byte aligned (serial and parallel passes), plain stores elsewhere: the
    same bits either way."""
    from fastq.kernels.cpu import parallel as _parallel
    from fastq.kernels.cpu.blocks import ggml as kernels
    from fastq.ops.formats.ggml import LAYOUTS
    rng = np.random.default_rng(5)
    for n in (37 * 32, (1 << 20) + 23 * 32):
        x = rng.standard_normal(n).astype(np.float32)
        qt = fq.quantize(x, fmt)
        want = gguf_dequantize(qt.data, qtype(fmt))
        monkeypatch.setattr(_parallel, "STREAM_ABOVE", 0)
        assert same_bits(fq.dequantize(qt), want)
        raw = np.zeros(n + 4, np.float32)
        for start in (0, 1, 2, 3):  # (one of them 16-byte aligned)
            out = raw[start:start + n]
            kernels.dequantize(qt.data, LAYOUTS[fmt].kind, out)
            assert same_bits(out, want), start
        monkeypatch.undo()


@pytest.mark.parametrize("fmt", LEGACY)
def test_legacy_ties_and_signed_zeros(fmt):
    # the kernels find the first element of largest magnitude from the largest positive
    # and negative magnitudes (a tie is resolved by a scan), and min/max on order keys
    # (a zero result by the last-of-equal rule): blocks built to hit each of those paths
    rng = np.random.default_rng(11)
    grid = rng.integers(-3, 4, (48, 32)).astype(np.float32) * 0.5
    grid[0::4, 5], grid[0::4, 20] = 1.5, -1.5  # +max before -max
    grid[1::4, 5], grid[1::4, 20] = -1.5, 1.5  # -max before +max
    signed_zeros = np.where(rng.random((16, 32)) < 0.5, -0.0, 0.0).astype(np.float32)
    zero_min = np.abs(rng.standard_normal((16, 32))).astype(np.float32)
    zero_min[rng.random((16, 32)) < 0.3] = 0.0
    zero_min[rng.random((16, 32)) < 0.2] = -0.0
    zero_max = -zero_min
    for name, x in {"grid": grid, "signed_zeros": signed_zeros, "zero_min": zero_min,
                    "zero_max": zero_max, "tiny_ties": grid * np.float32(1e-40)}.items():
        qt = fq.quantize(x, fmt)
        ref = reference(x, fmt)
        assert np.array_equal(qt.data, ref), name
        assert same_bits(fq.dequantize(qt), gguf_dequantize(ref, qtype(fmt))), name


@pytest.mark.parametrize("fmt", LEGACY)
def test_legacy_tiles_with_one_odd_block(fmt):
    """The scales of 16 blocks at a time run on lanes, a block a lane, with a tile holding
    a NaN, and a block whose signs tie or whose min or max is a zero, sent back to the
    block-by-block path: one such block at each position of a tile, among Gaussian
    ones, gives gguf's bytes in every block (a block holding a NaN, which ``fq.quantize``
    refuses, only counted) and the same NaN and overflow counts."""
    from fastq.kernels.cpu.blocks import ggml as kernels
    from fastq.ops.formats.ggml import LAYOUTS
    rng = np.random.default_rng(13)
    odd = [np.zeros(32), np.where(rng.random(32) < 0.5, -0.0, 0.0),
           rng.standard_normal(32) * 1e-41, np.r_[1.5, np.zeros(30), -1.5],
           np.r_[-1.5, np.zeros(30), 1.5], np.full(32, -2.0),
           np.abs(rng.standard_normal(32)), -np.abs(rng.standard_normal(32)),
           np.r_[0.0, np.abs(rng.standard_normal(31))],
           np.r_[-0.0, -np.abs(rng.standard_normal(31))], np.full(32, 1e38),
           np.r_[np.inf, np.ones(31)], np.full(32, -np.inf), np.r_[np.nan, np.ones(31)]]
    tiles = 16 * len(odd) + 1  # (and a partial tile at the end)
    x = rng.standard_normal((16 * tiles, 32))
    for t in range(tiles - 1):
        x[16 * t + t % 16] = odd[t // 16]
    x = x.astype(np.float32).ravel()
    ref = reference(x[None], fmt).ravel()
    out = np.zeros_like(ref)
    nan, overflow = kernels.quantize(x, LAYOUTS[fmt].kind, out)
    nbytes = ref.size // (16 * tiles)
    has_nan = np.isnan(x.reshape(-1, 32)).any(axis=1)
    got, want = out.reshape(-1, nbytes), ref.reshape(-1, nbytes)
    assert np.array_equal(got[~has_nan], want[~has_nan])
    assert nan == has_nan.sum() == 16
    assert overflow == 16 * 3  # (1e38, +inf and -inf: each scale, or minimum, overflows)


def test_codes():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    qt = fq.quantize(x, "q8_0")
    codes = qt.codes()
    assert codes.dtype == np.int8 and codes.shape == x.shape
    d = qt.data.reshape(3, 2, 34)[..., :2].copy().view(np.float16).astype(np.float32)
    assert np.array_equal(fq.dequantize(qt), (codes.reshape(3, 2, 32) * d).reshape(3, 64))
    for fmt, offset in (("q4_0", 8), ("q5_0", 16)):
        qt = fq.quantize(x, fmt)
        c = qt.codes().astype(np.int32) - offset
        assert c.min() >= -offset and c.max() < offset
        nb = 18 if fmt == "q4_0" else 22
        d = qt.data.reshape(3, 2, nb)[..., :2].copy().view(np.float16).astype(np.float32)
        assert same_bits(fq.dequantize(qt), (d * c.reshape(3, 2, 32).astype(np.float32))
                         .reshape(3, 64))
    for fmt, top in (("q4_1", 15), ("q5_1", 31), ("q4_K", 15), ("q5_K", 31), ("q6_K", 63)):
        xx = rng.standard_normal((2, 256)).astype(np.float32)
        c = fq.quantize(xx, fmt).codes()
        assert c.dtype == np.uint8 and c.shape == xx.shape and c.max() <= top


def test_empty_inputs():
    for fmt in ("q4_0", "q6_K"):
        qt = fq.quantize(np.zeros((0, 256), np.float32), fmt)
        assert qt.data.dtype == np.uint8 and qt.data.size == 0
        assert fq.dequantize(qt).shape == (0, 256)
        assert fq.quantize(np.zeros((3, 0), np.float32), fmt).dequantize().shape == (3, 0)


@pytest.mark.parametrize("fmt", ("q8_0", "q4_K"))
def test_bad_input(fmt):
    block = 256 if fmt.endswith("K") else 32
    with pytest.raises(ValueError, match=f"x.*multiple of the block size {block}"):
        fq.quantize(np.zeros((2, block + 16), np.float32), fmt)
    with pytest.raises(ValueError, match="block size"):
        fq.quantize(np.float32(1.0), fmt)
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(np.full((1, block), 1e8, np.float32), fmt)
    x = np.ones((1, block), np.float32)
    x[0, 3] = np.inf
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(x, fmt)
    x[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, fmt)
    with pytest.raises(ValueError, match="scale"):
        fq.quantize(np.ones((1, block), np.float32), fmt, scale=1.0)
    with pytest.raises(TypeError):
        fq.quantize(np.ones((1, block), np.float32), fmt, block_size=64)
    with pytest.raises(TypeError):
        fq.quantize(np.array(["a"] * block), fmt)


def test_minimum_overflow_raises():
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(np.full((1, 32), -1e5, np.float32), "q4_1")


def test_unknown_format():
    with pytest.raises(ValueError):
        fq.quantize(np.zeros((1, 32), np.float32), "q7_0")


@pytest.fixture(scope="module")
def vectors():
    return np.load(VECTORS)


def vector_names(z):
    return [k[2:] for k in z.files if k.startswith("x/")]


@pytest.mark.parametrize("fmt", KQUANTS)
def test_kquants_equal_llama_cpp_reference(fmt, vectors):
    for name in vector_names(vectors):
        x, ref = vectors["x/" + name], vectors[f"{fmt}/{name}"]
        qt = fq.quantize(x, fmt)
        assert np.array_equal(qt.data, ref), name
        assert same_bits(fq.dequantize(qt), gguf_dequantize(ref, qtype(fmt))), name
        assert qt.bits_per_element == BITS[fmt]


@pytest.mark.parametrize("fmt", KQUANTS)
def test_kquants_rows_and_parallel(fmt, vectors):
    # super-blocks are independent: the inputs side by side, as rows and repeated past the
    # serial size, give the reference bytes side by side
    names = vector_names(vectors)
    x = np.concatenate([vectors["x/" + n] for n in names])
    ref = np.concatenate([vectors[f"{fmt}/{n}"] for n in names])
    rows = fq.quantize(x.reshape(-1, 512), fmt)
    assert np.array_equal(rows.data.reshape(-1), ref)
    assert rows.data.shape == (x.size // 512, 2 * ref.size // (x.size // 256))
    big = fq.quantize(np.tile(x, 16), fmt)  # (past the serial size)
    assert np.array_equal(big.data, np.tile(ref, 16))
    assert same_bits(big.dequantize(), gguf_dequantize(big.data, qtype(fmt)))



EDGE_VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "kquant_edge_vectors.npz")


@pytest.mark.parametrize("fmt", KQUANTS)
def test_kquants_rare_clamp_equal_llama_cpp_reference(fmt):
    # super-blocks where C's clamp of the q6_K candidate -(32 + 0.5) / max changes the
    # largest element's code (fl(fl(-32.5 / max) * max) < -32.5; about 1 in 1e5 Gaussian
    # sub-blocks): a search that skipped it chose another scale
    # (tests/data/gen_kquant_edge_vectors.py)
    z = np.load(EDGE_VECTORS)
    x = z["x/q6_K_lower_clamp"]
    assert np.array_equal(fq.quantize(x, fmt).data, z[f"{fmt}/q6_K_lower_clamp"])


def random_kquant_inputs(rng):
    """Inputs that reach every path of the vectorized K-quant searches: odd super-block
    counts (padding lanes), sub-block scales over 6 decades (scales that round to 0 keep
    the search's codes), all-zero sub-blocks, grids (ties), inf/NaN and subnormal
    elements (C's integer rounding), magnitudes from 1e-40 to 3e38."""
    for nb in (1, 3, 9):
        n = 256 * nb
        yield "gauss", rng.standard_normal(n)
        yield "t1", rng.standard_t(1, n)
        yield "scaled", rng.standard_normal(n) * 10.0 ** rng.uniform(-40, 38, n // 32).repeat(32)
        yield "sub_scales", rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n // 16).repeat(16)
        yield "sparse", rng.standard_normal(n) * (rng.random(n) < 0.05)
        yield "grid", rng.integers(-20, 21, n) * 0.125
        yield "exp", rng.exponential(1, n)
        yield "negative", -rng.exponential(1, n) - 3
        yield "subnormal", rng.standard_normal(n) * 1e-42
        for bad in (np.inf, -np.inf, np.nan):
            x = rng.standard_normal(n)
            x[rng.integers(0, n, 3)] = bad
            yield f"with {bad}", x


@pytest.mark.skipif(not os.environ.get("FASTQ_GGML_CHECKOUT"),
                    reason="set FASTQ_GGML_CHECKOUT to a ggml or llama.cpp checkout (and have "
                           "gcc) to test random inputs against the C reference")
def test_kquants_random_equal_llama_cpp_reference(tmp_path):
    import ctypes
    import importlib.util

    from fastq.kernels.cpu.blocks import kquants
    spec = importlib.util.spec_from_file_location(
        "gen_kquant_vectors", os.path.join(os.path.dirname(VECTORS), "gen_kquant_vectors.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    lib = gen.build(os.environ["FASTQ_GGML_CHECKOUT"], str(tmp_path))
    for name, x in random_kquant_inputs(np.random.default_rng(2026)):
        x = np.ascontiguousarray(x, np.float32)
        for fmt in KQUANTS:
            ref = np.zeros(x.size // 256 * gen.BLOCK_BYTES[fmt], np.uint8)
            getattr(lib, f"quantize_row_{fmt}_ref")(
                x.ctypes.data_as(ctypes.c_void_p), ref.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int64(x.size))
            # (the kernel itself: fq.quantize refuses NaN and float16 overflow, which C writes)
            got = np.zeros_like(ref)
            with np.errstate(all="ignore"):
                kquants.quantize(x, KQUANTS.index(fmt), got)
            assert np.array_equal(got, ref), (fmt, name, x.size)
