"""The block formats on the CUDA backend equal the CPU backend bit for bit.

As ``tests/cuda_backend/test_cuda.py``: on a GPU when there is one, else under Numba's CUDA
simulator (``tests/conftest.py`` switches it on), which runs one Python thread per CUDA
thread, so inputs stay a few blocks.  Dequantized values are compared on their bits,
NaN aside: a NaN that GPU arithmetic produces is the canonical NaN, whose bits differ
from x86's (only blocks whose float16 scale is NaN or inf give one).
"""
import numpy as np
import pytest

import fastq as fq
from fastq.runtime import device as _device

LEGACY = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
KQUANTS = ["q4_K", "q5_K", "q6_K"]
MICRO = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp4", "mxint8", "nvfp4"]
# (the simulator computes in NumPy scalars, which warn on inf and NaN arithmetic)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
HALF_BYTES = {"q8_0": [0], "q4_0": [0], "q5_0": [0], "q4_1": [0, 2], "q5_1": [0, 2],
              "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208]}
BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_1": 20, "q5_0": 22, "q5_1": 24, "q4_K": 144,
               "q5_K": 176, "q6_K": 210}


def bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)


def assert_same_values(got, want):
    """Equal float32 bits, except that NaN need only meet NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(bits(got)[~nan], bits(want)[~nan])


def assert_same_qtensor(got, want):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    for a, b in [(got.data, want.data), (got.scale, want.scale),
                 (got.tensor_scale, want.tensor_scale)]:
        assert (a is None) == (b is None)
        if b is not None:
            a, b = np.asarray(fq.to_host(a)), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(bits(a), bits(b))


def block_input(rng, width=64, rows=2):
    """Rows of blocks of 32: an all-zero block, ±0, float32 and float16 subnormals,
    exact halves (ties of the code roundings), one large value and random ones."""
    x = (rng.standard_normal((rows, width)) * 2).astype(np.float32)
    x[0, :32] = 0.0
    x[0, 33], x[0, 34] = -0.0, 0.0
    x[1, :8] = [1e-41, -3e-39, 2.0 ** -24, -(2.0 ** -25), 6e-8, 0.5, -1.5, 2.5]
    if rows > 2:
        x[2, :32] = np.float32(1e-40) * np.arange(32, dtype=np.float32)  # a subnormal block
        x[2, 32:64] = 7.0  # a constant block
    x[-1, -1] = 1000.0
    return x


@pytest.mark.parametrize("dtype", LEGACY + KQUANTS)
def test_ggml_matches_cpu(cuda, dtype, rng):
    width = 256 if dtype in KQUANTS else 64
    x = block_input(rng, width, rows=2 if dtype in KQUANTS else 3)
    want = fq.quantize(x, dtype, backend="cpu")
    got = fq.quantize(x, dtype, backend="cuda")
    assert isinstance(got.data, np.ndarray)  # host in, host out
    assert_same_qtensor(got, want)
    assert_same_values(fq.dequantize(want, backend="cuda"), fq.dequantize(want))
    d = fq.quantize(cuda.to_device(x), dtype)  # auto: device in, device out
    assert _device.is_device(d.data)
    assert_same_qtensor(d, want)
    x_hat = fq.dequantize(d)
    assert _device.is_device(x_hat)
    assert_same_values(fq.to_host(x_hat), fq.dequantize(want))
    assert np.array_equal(d.codes(), want.codes())
    assert_same_values(fq.dequantize(d, backend="cpu"), fq.dequantize(want))


@pytest.mark.parametrize("dtype", LEGACY + KQUANTS)
def test_ggml_dequantize_any_bytes(cuda, dtype, rng):
    """Random block bytes: every code, and float16 scales that are normal, subnormal,
    ±0, inf and NaN."""
    nbytes = BLOCK_BYTES[dtype]
    blocks = rng.integers(0, 256, (6, nbytes), dtype=np.uint8)
    halves = np.array([0x3C00, 0x0001, 0x83FF, 0x8000, 0x0000, 0x7C00, 0xFE00, 0x7BFF,
                       0x1234, 0xABCD, 0x0400, 0x2E66], np.uint16)
    for k, o in enumerate(HALF_BYTES[dtype]):
        h = halves[(np.arange(6) + 3 * k) % halves.size]
        blocks[:, o], blocks[:, o + 1] = h & 0xFF, h >> 8
    block = 256 if dtype in KQUANTS else 32
    qt = fq.QTensor(blocks.reshape(2, -1), dtype, None, None, (2, 3 * block), None)
    assert_same_values(fq.dequantize(qt, backend="cuda"), fq.dequantize(qt, backend="cpu"))
    d = fq.QTensor(cuda.to_device(blocks.reshape(2, -1)), dtype, None, None,
                   (2, 3 * block), None)
    assert_same_values(fq.to_host(fq.dequantize(d)), fq.dequantize(qt, backend="cpu"))


@pytest.mark.parametrize("dtype", ["q4_0", "q5_1", "q8_0"])
def test_ggml_nan_and_overflow_like_cpu(cuda, dtype, rng):
    x = block_input(rng)
    x[1, 40] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, dtype, backend="cuda")
    want = fq.quantize(x, dtype, nan_policy="ignore", backend="cpu")
    assert_same_qtensor(fq.quantize(x, dtype, nan_policy="ignore", backend="cuda"), want)
    y = block_input(rng)
    y[0, 5] = np.inf
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(y, dtype, backend="cuda")
    y[0, 5] = 3e38
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(cuda.to_device(y), dtype)
    with pytest.raises(ValueError, match="block size 32"):
        fq.quantize(np.ones((2, 48), np.float32), dtype, backend="cuda")
    with pytest.raises(ValueError, match="block size 32"):
        fq.quantize(cuda.to_device(np.ones(48, np.float32)), dtype)


@pytest.mark.parametrize("dtype", ["q2_K", "q3_K"])
def test_cpu_only_ggml_formats_refuse_the_gpu(cuda, dtype):
    x = np.ones((2, 256), np.float32)
    with pytest.raises(ValueError, match="CPU only"):
        fq.quantize(x, dtype, backend="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        fq.quantize(cuda.to_device(x), dtype)
    with pytest.raises(ValueError, match="CPU only"):
        fq.dequantize(fq.quantize(x, dtype), backend="cuda")


@pytest.mark.parametrize("dtype", MICRO)
def test_microscale_matches_cpu(cuda, dtype, rng):
    x = block_input(rng, 64, rows=3)
    x[1, 40:44] = [3e38, -1e-45, 448.0, 0.75]  # saturation and a float32 subnormal
    x[2, 16:32] = np.float32(1e-44)  # an nvfp4 block of subnormals
    want = fq.quantize(x, dtype, backend="cpu")
    got = fq.quantize(x, dtype, backend="cuda")
    assert isinstance(got.data, np.ndarray)
    assert_same_qtensor(got, want)
    assert_same_values(fq.dequantize(want, backend="cuda"), fq.dequantize(want))
    d = fq.quantize(cuda.to_device(x), dtype)
    assert _device.is_device(d.data) and _device.is_device(d.scale)
    assert_same_qtensor(d, want)
    x_hat = fq.dequantize(d)
    assert _device.is_device(x_hat)
    assert_same_values(fq.to_host(x_hat), fq.dequantize(want))
    for bad in (np.inf, np.nan):
        y = x.copy()
        y[0, 3] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            fq.quantize(y, dtype, backend="cuda")


def test_microscale_tiny_blocks_and_other_inputs(cuda, rng):
    """Blocks whose shared exponent clamps at -127 (the divide path), float16/float64
    input converted as on the CPU, and the block-size check."""
    x = np.zeros((2, 32), np.float32)
    x[0] = np.float32(1e-45) * np.arange(32)
    x[1] = np.float32(3e-39) * rng.standard_normal(32).astype(np.float32)
    for dtype in ("mxfp8_e4m3", "mxint8", "mxfp4"):
        assert_same_qtensor(fq.quantize(x, dtype, backend="cuda"),
                            fq.quantize(x, dtype, backend="cpu"))
    y = block_input(rng)
    for src in (np.float16, np.float64):
        assert_same_qtensor(fq.quantize(y.astype(src), "mxfp8_e5m2", backend="cuda"),
                            fq.quantize(y.astype(src), "mxfp8_e5m2", backend="cpu"))
    with pytest.raises(ValueError, match="block size 16"):
        fq.quantize(np.ones((2, 24), np.float32), "nvfp4", backend="cuda")


@pytest.mark.parametrize("shape,block_size", [((3, 40), 64), ((2, 16), 7), ((5,), 64)])
def test_nf4_matches_cpu(cuda, shape, block_size, rng):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    flat = x.reshape(-1)
    flat[:min(block_size, flat.size)] = 0.0  # an all-zero block
    flat[-3:] = [-0.0, 1e-41, -2.5]
    want = fq.quantize(x, "nf4", block_size=block_size, backend="cpu")
    got = fq.quantize(x, "nf4", block_size=block_size, backend="cuda")
    assert_same_qtensor(got, want)
    assert_same_values(fq.dequantize(want, backend="cuda"), fq.dequantize(want))
    d = fq.quantize(cuda.to_device(x), "nf4", block_size=block_size)
    assert _device.is_device(d.data)
    assert_same_qtensor(d, want)
    assert_same_values(fq.to_host(fq.dequantize(d)), fq.dequantize(want))
    with pytest.raises(ValueError, match="NaN or inf"):
        fq.quantize(np.full(shape, np.inf, np.float32), "nf4", backend="cuda")


def test_nf4_ties_go_to_the_lower_index(cuda):
    """Values exactly at the table's midpoints (in units of absmax 1)."""
    from fastq.ops.formats.nf4 import MID32, TABLE
    x = np.concatenate([MID32, np.nextafter(MID32, np.float32(2)), TABLE, [1.0]])
    x = x.astype(np.float32)
    assert_same_qtensor(fq.quantize(x, "nf4", backend="cuda"),
                        fq.quantize(x, "nf4", backend="cpu"))


def test_empty_and_zero_sized(cuda):
    for dtype, width in [("q4_0", 32), ("q4_K", 256), ("mxfp4", 32), ("nvfp4", 16)]:
        x = np.zeros((0, width), np.float32)
        got = fq.quantize(x, dtype, backend="cuda")
        want = fq.quantize(x, dtype, backend="cpu")
        assert_same_qtensor(got, want)
        assert fq.dequantize(got, backend="cuda").shape == (0, width)


@pytest.mark.parametrize("dtype", KQUANTS)
def test_kquants_search_matches_cpu(cuda, dtype, rng):
    """llama.cpp's scale search on the GPU: heavy tails, constant and all-zero
    sub-blocks, a sub-block of subnormals, a near-flat one; NaN raises, inf as on the
    CPU."""
    x = (rng.standard_normal((3, 256)) * 2).astype(np.float32)
    x[0, :64] = 0.0
    x[0, 64:96] = 5.0
    x[0, 128:] = rng.standard_t(2, 128).astype(np.float32)
    x[1, :32] = np.float32(1e-40) * np.arange(32, dtype=np.float32)
    x[2, :16] = 0.0
    x[2, 16:32] = -3.0
    x[2, 32:48] = np.float32(1.0) + np.float32(2.0 ** -20) * np.arange(16, dtype=np.float32)
    assert_same_qtensor(fq.quantize(x, dtype, backend="cuda"),
                        fq.quantize(x, dtype, backend="cpu"))
    y = x[:1].copy()
    y[0, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(y, dtype, backend="cuda")
    y[0, 7] = np.inf  # (the CPU raises for q4_K/q5_K; q6_K writes the block)
    try:
        want = fq.quantize(y, dtype, backend="cpu")
    except ValueError:
        with pytest.raises(ValueError, match="overflow"):
            fq.quantize(y, dtype, backend="cuda")
    else:
        assert np.array_equal(fq.quantize(y, dtype, backend="cuda").data, want.data)
