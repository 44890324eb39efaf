"""The CUDA backend equals the CPU backend bit for bit.

Runs on a GPU when there is one, else under Numba's CUDA simulator (``tests/conftest.py``
switches it on), which runs one Python thread per CUDA thread: arrays stay small here.
The simulator's device arrays lack ``__cuda_array_interface__``; the zero-copy paths
(torch / CuPy tensors) are exercised only on a real GPU (``test_cuda_array_interface``).
"""
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.runtime import device as _device

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
TARGETS = ["float16", "bfloat16", "float32", "float64"]


def bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)


def edge_values(dtype, rng, n=160):
    """Specials, ties, subnormals of every target, extremes, and random values."""
    f32 = np.finfo(np.float32)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 65504.0, 65520.0,
               65519.99, 1e-8, -3e-8, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -14,
               f32.tiny, f32.tiny / 3, float(f32.max), -float(f32.max), 1e-45, 1.00390625,
               1.01171875, 2.0 ** -133, 1e300, -1e-300, 5e-324]
    x = np.array(special, np.float64)
    scales = 10.0 ** rng.integers(-44, 38, n)
    x = np.concatenate([x, rng.standard_normal(n) * scales])
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        x = x.astype(dtype)
    if dtype == np.float32:  # NaN payloads and raw bit patterns
        x = np.concatenate([x, np.array([0x7F800001, 0xFFC00123, 0x7FBFFFFF, 0x00000001,
                                         0x807FFFFF, 0x33800000, 0x387FF000],
                                        np.uint32).view(np.float32)])
    return x


@pytest.mark.parametrize("rounding", ["nearest_even", "truncate", "stochastic"])
@pytest.mark.parametrize("to", TARGETS)
@pytest.mark.parametrize("src", FLOATS, ids=str)
def test_cast_matches_cpu(cuda, src, to, rounding, rng):
    x = edge_values(src, rng)
    seed = 12345 if rounding == "stochastic" else None
    want = fq.cast(x, to, rounding=rounding, seed=seed, backend="cpu")
    got = fq.cast(x, to, rounding=rounding, seed=seed, backend="cuda")
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype  # host in, host out
    assert np.array_equal(bits(got), bits(want))


@pytest.mark.parametrize("saturate", [False, True])
def test_cast_saturate_matches_cpu(cuda, saturate, rng):
    x = edge_values(np.float32, rng)
    for to in ("float16", "bfloat16"):
        want = fq.cast(x, to, saturate=saturate, backend="cpu")
        got = fq.cast(x, to, saturate=saturate, backend="cuda")
        assert np.array_equal(bits(got), bits(want))


def test_cast_every_float16_decodes_like_cpu(cuda):
    codes = np.arange(0, 1 << 16, 97, dtype=np.uint16)  # a stride through every exponent
    codes = np.concatenate([codes, np.arange(0, 40, dtype=np.uint16),
                            np.array([0x7C00, 0xFC00, 0x7C01, 0xFE00, 0x8001, 0x83FF],
                                     np.uint16)])
    for dtype in (np.float16, BF16):
        x = codes.view(dtype)
        for to in ("float32", "float64"):
            want = fq.cast(x, to, backend="cpu")
            assert np.array_equal(bits(fq.cast(x, to, backend="cuda")), bits(want))


def test_cast_device_in_device_out(cuda, rng):
    x = edge_values(np.float32, rng, 37).reshape(3, -1)
    d = cuda.to_device(x)
    got = fq.cast(d, "bfloat16", backend="cuda")
    assert _device.is_device(got) and tuple(got.shape) == x.shape
    host = fq.to_host(got)
    assert host.dtype == BF16
    assert np.array_equal(bits(host), bits(fq.cast(x, "bfloat16", backend="cpu")))
    out = cuda.device_array(x.shape, np.float16)
    assert fq.cast(d, "float16", out=out, backend="cuda") is out
    assert np.array_equal(bits(fq.to_host(out)), bits(fq.cast(x, "float16")))


def test_cast_host_layouts_and_out(cuda, rng):
    x = rng.standard_normal((6, 8)).astype(">f4")[:, ::-2]  # big-endian, strided
    want = fq.cast(x, "float16", backend="cpu")
    assert np.array_equal(bits(fq.cast(x, "float16", backend="cuda")), bits(want))
    out = np.full(x.shape, 7, np.float16)
    assert fq.cast(x, "float16", out=out, backend="cuda") is out
    assert np.array_equal(bits(out), bits(want))
    for shape in [(), (0,), (3, 0)]:
        y = np.full(shape, 1.5, np.float32)
        got = fq.cast(y, "bfloat16", backend="cuda")
        assert got.shape == shape and np.array_equal(bits(got), bits(fq.cast(y, "bfloat16")))


def test_cast_device_bad_arguments(cuda):
    d = cuda.to_device(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="x must be"):
        fq.cast(cuda.to_device(np.ones(4, np.int32)), "float16", backend="cuda")
    with pytest.raises(ValueError, match="out must have"):
        fq.cast(d, "float16", out=cuda.device_array(4, np.float32), backend="cuda")
    with pytest.raises(TypeError, match="out must be a CUDA array"):
        fq.cast(d, "float16", out=np.empty(4, np.float16), backend="cuda")
    with pytest.raises(ValueError, match="rounding"):
        fq.cast(d, "float16", rounding="up", backend="cuda")


def test_to_host_passes_host_values_through():
    a = np.arange(3.0)
    assert fq.to_host(a) is a and fq.to_host(None) is None


def test_cpu_use_never_imports_the_cuda_backend():
    code = ("import sys, numpy as np, fastq as fq; fq.cast(np.ones(3, np.float32), 'float16');"
            "fq.quantize(np.ones(3, np.float32), 'int8');"
            "assert 'fastq.kernels.cuda' not in sys.modules, 'fastq.kernels.cuda imported';"
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif("not __import__('os').path.exists('/dev/nvidia0')")
def test_cuda_array_interface():
    """Zero-copy in and device out with a torch CUDA tensor (real GPU only)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = torch.randn(1000, device="cuda")
    got = fq.cast(x, "float16")  # auto: runs on the GPU
    assert hasattr(got, "__cuda_array_interface__")
    want = x.cpu().numpy().astype(np.float16)
    assert np.array_equal(bits(fq.to_host(got)), bits(want))
    assert torch.equal(torch.as_tensor(got, device="cuda").cpu(), torch.from_numpy(want))


# --- linear quantization ------------------------------------------------------------

INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2"]
GRANULARITIES = ["tensor", fq.PerChannel(0), fq.PerChannel(-1), fq.PerGroup(8),
                 fq.PerGroup(4, axis=0), fq.PerBlock((4, 8))]


def quant_input(rng, shape=(6, 20)):
    """Ties at x.5 steps, zeros, an all-zero channel and a partial last group."""
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(3)
    x[0, :5] = [0.5, -0.5, 1.5, -2.5, 0.0]
    x[2] = 0.0  # an all-zero channel
    x[3, 0] = -0.0
    return x


def assert_same_qtensor(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(bits(got.data), bits(want.data))
    assert np.array_equal(bits(got.scale), bits(want.scale))
    assert (got.zero_point is None) == (want.zero_point is None)
    if want.zero_point is not None:
        assert got.zero_point.dtype == want.zero_point.dtype
        assert np.array_equal(got.zero_point, want.zero_point)


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_quantize_matches_cpu(cuda, dtype, scheme, granularity, rng):
    x = quant_input(rng)
    want = fq.quantize(x, dtype, scheme=scheme, granularity=granularity, backend="cpu")
    got = fq.quantize(x, dtype, scheme=scheme, granularity=granularity, backend="cuda")
    assert isinstance(got.data, np.ndarray)  # host in, host out
    assert_same_qtensor(got, want)
    fake = fq.fake_quantize(x, dtype, scheme=scheme, granularity=granularity, backend="cuda")
    want_fake = fq.fake_quantize(x, dtype, scheme=scheme, granularity=granularity,
                                 backend="cpu")
    assert np.array_equal(bits(fake), bits(want_fake))
    assert np.array_equal(bits(fq.dequantize(want, backend="cuda")), bits(fq.dequantize(want)))
    p = fq.choose_qparams(x, dtype, scheme=scheme, granularity=granularity, backend="cuda")
    assert np.array_equal(bits(p.scale), bits(want.scale))


@pytest.mark.parametrize("dtype", ["int8", "uint4"])
def test_quantize_device_in_device_out(cuda, dtype, rng):
    x = quant_input(rng)
    g = fq.PerGroup(8)
    qt = fq.quantize(cuda.to_device(x), dtype, granularity=g, backend="cuda")
    for a in (qt.data, qt.scale, qt.zero_point):
        assert _device.is_device(a)
    host = fq.to_host(qt)
    assert isinstance(host.data, np.ndarray) and isinstance(host.scale, np.ndarray)
    assert_same_qtensor(host, fq.quantize(x, dtype, granularity=g, backend="cpu"))
    assert np.array_equal(bits(fq.to_host(qt.codes())), bits(host.codes()))
    x_hat = fq.dequantize(qt, backend="cuda")
    assert _device.is_device(x_hat)
    assert np.array_equal(bits(fq.to_host(x_hat)), bits(fq.dequantize(host)))
    fake = fq.fake_quantize(cuda.to_device(x), dtype, granularity=g, backend="cuda")
    assert np.array_equal(bits(fq.to_host(fake)),
                          bits(fq.fake_quantize(x, dtype, granularity=g, backend="cpu")))
    p = fq.to_host(fq.choose_qparams(cuda.to_device(x), dtype, granularity=g, backend="cuda"))
    assert np.array_equal(bits(p.scale), bits(host.scale))


@pytest.mark.parametrize("src", [np.float16, np.float64, BF16], ids=str)
def test_quantize_other_float_inputs(cuda, src, rng):
    x = quant_input(rng).astype(src)
    want = fq.quantize(x, "int8", granularity=fq.PerChannel(1), backend="cpu")
    assert_same_qtensor(fq.quantize(x, "int8", granularity=fq.PerChannel(1), backend="cuda"),
                        want)
    got = fq.to_host(fq.quantize(cuda.to_device(x), "int8", granularity=fq.PerChannel(1),
                                 backend="cuda"))
    assert_same_qtensor(got, want)


def test_quantize_static_nan_inf_and_narrow_range(cuda, rng):
    x = quant_input(rng)
    x[1, :4] = [np.nan, np.inf, -np.inf, 1e30]
    scale = np.full(20, 0.05, np.float32)
    kw = dict(granularity=fq.PerChannel(1), scale=scale, nan_policy="ignore")
    assert_same_qtensor(fq.quantize(x, "int8", backend="cuda", **kw),
                        fq.quantize(x, "int8", backend="cpu", **kw))
    for dtype in ("int8", "uint8"):
        want = fq.quantize(x, dtype, nan_policy="ignore", granularity=fq.PerChannel(0),
                           backend="cpu")
        assert_same_qtensor(fq.quantize(x, dtype, nan_policy="ignore",
                                        granularity=fq.PerChannel(0), backend="cuda"), want)
    y = quant_input(rng)
    kw = dict(scheme="symmetric", narrow_range=True, granularity=fq.PerChannel(0))
    assert_same_qtensor(fq.quantize(y, "int8", backend="cuda", **kw),
                        fq.quantize(y, "int8", backend="cpu", **kw))
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8", backend="cuda")
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8", scale=np.float32(0.1), backend="cuda")


def test_quantize_shapes(cuda, rng):
    for shape in [(), (0,), (7,), (3, 1, 5), (2, 3, 4, 5)]:
        x = rng.standard_normal(shape).astype(np.float32)
        g = "tensor" if len(shape) < 2 else fq.PerChannel(1)
        assert_same_qtensor(fq.quantize(x, "int4", granularity=g, backend="cuda"),
                            fq.quantize(x, "int4", granularity=g, backend="cpu"))


# --- packing and metrics ------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("signed", [True, False])
def test_pack_unpack_on_device(cuda, bits, signed, rng):
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    for n in (0, 1, 7, 37):
        codes = rng.integers(lo, hi, n).astype(np.int16)  # a wider dtype, narrowed on the GPU
        want = fq.pack(codes, bits=bits, signed=signed)
        packed = fq.pack(cuda.to_device(codes), bits=bits, signed=signed)
        assert _device.is_device(packed)
        assert np.array_equal(fq.to_host(packed), want)
        got = fq.unpack(packed, bits=bits, count=n, signed=signed)
        assert _device.is_device(got)
        assert np.array_equal(fq.to_host(got), fq.unpack(want, bits=bits, count=n,
                                                         signed=signed))
    with pytest.raises(ValueError, match="codes must lie in"):
        fq.pack(cuda.to_device(np.array([0, hi], np.int16)), bits=bits, signed=signed)


def test_pack_unpack_device_bad_arguments(cuda):
    with pytest.raises(TypeError, match="codes must be an integer"):
        fq.pack(cuda.to_device(np.ones(4, np.float32)))
    with pytest.raises(TypeError, match="packed must be"):
        fq.unpack(cuda.to_device(np.ones(4, np.int16)))
    with pytest.raises(ValueError, match="count"):
        fq.unpack(cuda.to_device(np.ones(2, np.uint8)), bits=4, count=5)


@pytest.mark.parametrize("n", [1, 15, 16, 1000, (1 << 16) + 37])
def test_metrics_on_device_equal_cpu(cuda, n, rng):
    x = rng.standard_normal(n).astype(np.float32)
    x_hat = fq.fake_quantize(x, "int4", granularity="tensor") if n > 1 else x * 0.5
    want = fq.metrics(x, x_hat)
    assert fq.metrics(cuda.to_device(x), cuda.to_device(x_hat)) == want
    assert fq.metrics(cuda.to_device(x), x_hat) == want  # one on the host: copied in


def test_metrics_on_device_dtypes_and_specials(cuda, rng):
    x = rng.standard_normal((4, 9)).astype(np.float64)
    for a, b in [(x, x.astype(np.float16)), (x.astype(BF16), x.astype(np.float32)),
                 (np.arange(36, dtype=np.int32).reshape(4, 9), x)]:
        got = fq.metrics(cuda.to_device(a), cuda.to_device(b))
        assert got == fq.metrics(a, b)
    y = x.copy()
    y[0, 0] = np.inf
    assert repr(fq.metrics(cuda.to_device(x), cuda.to_device(y))) == repr(fq.metrics(x, y))
    y[1, 1] = np.nan
    assert repr(fq.metrics(cuda.to_device(x), cuda.to_device(y))) == repr(fq.metrics(x, y))
    with pytest.raises(ValueError, match="x_hat must have"):
        fq.metrics(cuda.to_device(x), cuda.to_device(x[:2]))


def test_gpu_benchmark_script_runs(cuda, tmp_path):
    """``bench/gpu_bench.py`` is one command away from a table (a smoke run here)."""
    import os
    if not os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("on a real GPU the benchmark is run by hand")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "gpu_bench.py")
    out = tmp_path / "RESULTS.md"
    subprocess.run([sys.executable, script, "--elements", "2048", "--reps", "1", "--out",
                    str(out)], check=True, capture_output=True)
    table = out.read_text()
    assert "| metrics" in table and "| cast f32->bf16 (RNE)" in table
