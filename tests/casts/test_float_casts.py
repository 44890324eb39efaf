"""fq.cast to and from the extended formats: float8_e4m3fn, float8_e5m2, float4_e2m1fn
and float8_e8m0fnu, against ml_dtypes (saturate=False) and onnx.reference (saturate=True)."""
import ml_dtypes
import numpy as np
import pytest

import fastq as fq

EXTENDED = ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float8_e8m0fnu"]
SOURCES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(a):
    a = np.asarray(a)
    return a.view(WORD[a.dtype.itemsize])


def reference(x, name):
    with np.errstate(all="ignore"):
        return x.astype(getattr(ml_dtypes, name))


def all_float16(dtype=np.float16):
    with np.errstate(invalid="ignore"):
        return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(dtype)


def boundaries(name):
    """max, min normal, subnormals, ties and their neighbours, +-0, +-inf, NaNs."""
    info = ml_dtypes.finfo(getattr(ml_dtypes, name))
    points = [float(info.max), float(info.smallest_normal), float(info.smallest_subnormal),
              float(info.eps), 1.0, 0.0]
    vals = []
    for p in points:
        for k in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0):
            vals.append(p * k)
    with np.errstate(over="ignore"):
        x = np.array(vals, np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                        np.nextafter(x, np.float32(0)), [1e30, 3e38, np.inf, np.nan]])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", EXTENDED)
@pytest.mark.parametrize("src", SOURCES, ids=lambda t: np.dtype(t).name)
def test_every_float16_matches_ml_dtypes(name, src):
    x = all_float16(src)
    assert np.array_equal(bits(fq.cast(x, name)), bits(reference(x, name)))


@pytest.mark.parametrize("name", EXTENDED)
def test_random_float32_and_float64_match_ml_dtypes(name):
    rng = np.random.default_rng(12)
    x = rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint32).view(np.float32)
    assert np.array_equal(bits(fq.cast(x, name)), bits(reference(x, name)))
    # doubles near the format's values: one rounding, directly from float64
    d = rng.standard_normal(1 << 18) * np.exp2(rng.integers(-20, 20, 1 << 18))
    d = np.concatenate([d, d.astype(np.float32).astype(np.float64)])
    assert np.array_equal(bits(fq.cast(d, name)), bits(reference(d, name)))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXTENDED)
def test_millions_of_random_float32(name):
    rng = np.random.default_rng(13)
    for _ in range(4):
        x = rng.integers(0, 1 << 32, 1 << 22, dtype=np.uint32).view(np.float32)
        assert np.array_equal(bits(fq.cast(x, name)), bits(reference(x, name)))


@pytest.mark.parametrize("name", EXTENDED)
@pytest.mark.parametrize("to", ["float32", "float16", "bfloat16", "float64"])
def test_decode_every_code(name, to):
    codes = np.arange(256, dtype=np.uint8)
    if name == "float4_e2m1fn":
        codes &= 0xF  # (ml_dtypes' 4-bit values in a byte: the high bits clear)
    c = codes.view(getattr(ml_dtypes, name))
    with np.errstate(all="ignore"):  # (E8M0 beyond float16: inf, as ml_dtypes)
        ref = c.astype(ml_dtypes.bfloat16 if to == "bfloat16" else np.dtype(to))
    assert np.array_equal(bits(fq.cast(c, to)), bits(ref))


def test_extended_to_extended_goes_through_float32():
    c = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e5m2)
    assert np.array_equal(bits(fq.cast(c, "float8_e4m3fn")),
                          bits(reference(c.astype(np.float32), "float8_e4m3fn")))


def onnx_cast(x, name, saturate):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    to = {"float8_e4m3fn": TensorProto.FLOAT8E4M3FN, "float8_e5m2": TensorProto.FLOAT8E5M2,
          "float4_e2m1fn": TensorProto.FLOAT4E2M1}[name]
    node = helper.make_node("Cast", ["x"], ["y"], to=to, saturate=int(saturate))
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", to, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"])
@pytest.mark.parametrize("saturate", [True, False])
def test_onnx_reference_cast_on_boundaries(name, saturate):
    x = boundaries(name)
    with np.errstate(all="ignore"):
        ref = onnx_cast(x, name, saturate)
    assert np.array_equal(bits(fq.cast(x, name, saturate=saturate)), bits(ref))


def test_saturate_maps_overflow_and_inf_to_max():
    x = np.array([1e6, -1e6, np.inf, -np.inf, np.nan, 464.0, 61440.0], np.float32)
    e4 = fq.cast(x, "float8_e4m3fn", saturate=True).astype(np.float32)
    assert e4[:4].tolist() == [448, -448, 448, -448] and np.isnan(e4[4]) and e4[5] == 448
    e5 = fq.cast(x, "float8_e5m2", saturate=True).astype(np.float32)
    assert e5[:4].tolist() == [57344, -57344, 57344, -57344] and e5[6] == 57344
    assert fq.cast(x, "float4_e2m1fn", saturate=True).astype(np.float32)[:4].tolist() == \
        [6, -6, 6, -6]
    # without saturation: ml_dtypes (NaN for e4m3fn, inf for e5m2)
    assert np.isnan(fq.cast(x[:4], "float8_e4m3fn").astype(np.float32)).all()
    assert np.isinf(fq.cast(x[:4], "float8_e5m2").astype(np.float32)).all()


def test_e8m0_saturation_and_onnx_nearest_on_positive_values():
    # (ONNX keeps inf as 0xFF, its NaN, and clamps finite overflow at 2**127)
    from onnx import numpy_helper
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal(4096).astype(np.float32)) * np.exp2(
        rng.integers(-120, 120, 4096)).astype(np.float32)
    x = np.concatenate([x, np.array([2.0 ** 127 * 1.75, np.inf, 1.5, 3.0, 1.0], np.float32)])
    ref = numpy_helper.to_float8e8m0(x, saturate=True, round_mode="nearest")
    assert np.array_equal(bits(fq.cast(x, "float8_e8m0fnu", saturate=True)), bits(ref))


@pytest.mark.parametrize("name", EXTENDED)
def test_truncate_rounds_toward_zero(name):
    x = all_float16().astype(np.float32)
    x = x[np.isfinite(x)]
    y = fq.cast(x, name, rounding="truncate").astype(np.float64)
    if name == "float8_e8m0fnu":
        x = x[x > 2.0 ** -127]  # (no zero: the smallest code is 2**-127)
        y = fq.cast(x, name, rounding="truncate").astype(np.float64)
    assert np.isfinite(y).all() and (np.abs(y) <= np.abs(x)).all()
    # the largest value at or below |x|: nearest rounding lands on it or the next one up
    near = np.abs(reference(x, name).astype(np.float64))
    assert ((near == np.abs(y)) | (near > np.abs(x)) | np.isnan(near)).all()


@pytest.mark.parametrize("name", EXTENDED)
def test_stochastic_is_reproducible_and_brackets_the_value(name):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.01, 4, 1 << 16).astype(np.float32)
    if name == "float8_e8m0fnu":
        x = np.concatenate([x, np.float32(2.0 ** -127) * rng.uniform(0.5, 2, 512).astype(
            np.float32)])
    a = fq.cast(x, name, rounding="stochastic", seed=9)
    b = fq.cast(x, name, rounding="stochastic", seed=9)
    assert np.array_equal(bits(a), bits(b))
    lo = fq.cast(x, name, rounding="truncate").astype(np.float64)
    y = a.astype(np.float64)
    assert ((y == lo) | (y > lo)).all()
    up = y > lo
    assert 0.1 < up.mean() < 0.9
    # unbiased: the mean error is small against the spacing
    step = np.where(up, y - lo, 0)
    assert abs(np.mean(y - x)) < 0.05 * np.mean(np.maximum(step, 1e-30)[up])


def test_shapes_strides_and_out():
    x = np.linspace(-500, 500, 24, dtype=np.float32).reshape(4, 6)[:, ::-2]
    out = np.empty(x.shape, ml_dtypes.float8_e4m3fn)
    r = fq.cast(x, "float8_e4m3fn", out=out, saturate=True)
    assert r is out
    assert np.array_equal(bits(out), bits(reference(np.clip(x, -448, 448), "float8_e4m3fn")))
    assert fq.cast(np.float32(3.0), "float4_e2m1fn").shape == ()
    assert fq.cast(np.zeros((0, 3), np.float32), "float8_e5m2").shape == (0, 3)
    e = fq.cast(np.zeros(5, ml_dtypes.float8_e5m2), "float32")
    assert e.dtype == np.float32 and not e.any()


def test_float8_e5m2_input_as_the_first_call():
    """ml_dtypes gives float8_e5m2 NumPy's kind "f" (the others "V"): fastq knows its
    formats by type number, also when such an array is the first it sees (a fresh
    process, ml_dtypes' formats not yet looked up)."""
    import subprocess
    import sys
    code = ("import ml_dtypes, numpy as np, fastq as fq; "
            "v = fq.cast(np.array([1.5, -2, 0.0625], ml_dtypes.float8_e5m2), 'float32'); "
            "print(v.tolist())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[1.5,", "-2.0,", "0.0625]"]
    from fastq.core.formats import is_added_dtype
    added = [np.dtype(getattr(ml_dtypes, n)) for n in ("bfloat16", *EXTENDED)]
    assert all(map(is_added_dtype, added))
    assert not any(is_added_dtype(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                                        np.longdouble, "V8", np.int8))


@pytest.mark.parametrize("name", EXTENDED)
def test_cuda_twin_matches_cpu(name):
    """The CUDA codec (a real GPU, or Numba's simulator: small arrays) equals the CPU's."""
    try:
        from numba import cuda
        usable = cuda.is_available()
    except Exception:
        usable = False
    if not usable:
        pytest.skip("numba.cuda cannot run here")
    x = boundaries(name)[::3]
    x = np.concatenate([x, np.float32(2.0 ** -127) * np.float32([0.5, 1, 1.5, 1.75])])
    for rounding, saturate in (("nearest_even", False), ("nearest_even", True),
                               ("truncate", False)):
        want = fq.cast(x, name, rounding=rounding, saturate=saturate, backend="cpu")
        got = fq.cast(x, name, rounding=rounding, saturate=saturate, backend="cuda")
        assert np.array_equal(bits(got), bits(want))
    want = fq.cast(x, name, rounding="stochastic", seed=4, backend="cpu")
    assert np.array_equal(bits(fq.cast(x, name, rounding="stochastic", seed=4,
                                       backend="cuda")), bits(want))
    codes = np.arange(0, 256, 7, dtype=np.uint8) & (0xF if name == "float4_e2m1fn" else 0xFF)
    c = codes.view(getattr(ml_dtypes, name))
    assert np.array_equal(bits(fq.cast(c, "float32", backend="cuda")), bits(fq.cast(c, "float32")))
