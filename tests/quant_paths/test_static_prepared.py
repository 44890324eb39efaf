"""Quantization with given parameters of several groups on a call whose plan is cached
(``fastq.ops.plans.static_prepared``: the kernels' prepared call with no ``ieee_default``
and no validation beyond the parameters'): the same codes, parameters and fake values
as the general path, which an input that is not ready (big-endian) always takes."""
import numpy as np
import pytest

import fastq as fq
from fastq.ops import plans

GRANULARITIES = [fq.PerChannel(0), fq.PerChannel(1), fq.PerGroup(32), fq.PerGroup(4, 0),
                 fq.PerBlock((4, 64))]
DTYPES = ["int8", "uint8", "int16", "uint4", "int2"]


def sample(shape=(24, 256), seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3
    x[1, :8] = np.float32(0.125) * np.arange(-4, 4)  # (small values near ties)
    return x


def general(x, dtype, **kwargs):
    """The general path's results, from a big-endian copy of ``x`` (never prepared)."""
    return fq.quantize(x.astype(">f4"), dtype, **kwargs)


def prepared(x, dtype, **kwargs):
    """A second call's results, after checking that it takes the prepared path."""
    fq.quantize(x, dtype, **kwargs)
    args = dict(scheme="asymmetric", granularity="tensor", narrow_range=False,
                nan_policy="raise", backend="auto") | kwargs
    assert plans.static_prepared(x, dtype, args.pop("scheme"), args.pop("granularity"),
                                 args.pop("scale"), args.pop("zero_point", None),
                                 **args) is not None
    return fq.quantize(x, dtype, **kwargs)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape and a.granularity == b.granularity
    assert a.data.dtype == b.data.dtype and np.array_equal(a.data, b.data)
    assert a.scale.dtype == b.scale.dtype == np.float32
    assert np.array_equal(a.scale.view(np.uint32), b.scale.view(np.uint32))
    if b.zero_point is None:
        assert a.zero_point is None
    else:
        assert a.zero_point.dtype == b.zero_point.dtype
        assert np.array_equal(a.zero_point, b.zero_point)


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_choose_qparams_given_back(granularity, dtype, scheme):
    x = sample()
    qp = fq.choose_qparams(x, dtype, scheme, granularity)
    args = dict(scheme=scheme, granularity=granularity, scale=qp.scale,
                zero_point=qp.zero_point)
    qt = prepared(x, dtype, **args)
    same(qt, general(x, dtype, **args))
    same(qt, fq.quantize(x, dtype, scheme, granularity))  # (the dynamic call's codes)
    fake = fq.fake_quantize(x, dtype, **args)
    want = fq.fake_quantize(x.astype(">f4"), dtype, **args)
    assert np.array_equal(fake.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(fake, fq.dequantize(qt))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint4"])
def test_given_scales_and_zero_points(dtype):
    """Scales that put many values on ties, zero points across the range, 0 included
    (``zero_free``), read-only parameter arrays."""
    x = sample((16, 300), seed=3)
    qmin, qmax = {"uint8": (0, 255), "int8": (-128, 127), "uint4": (0, 15)}[dtype]
    scale = np.float32(2.0) ** -np.arange(16, dtype=np.float32) / 4
    for zero_point in (np.linspace(qmin, qmax, 16).astype(np.int64), None,
                       np.zeros(16, np.uint8)):
        if zero_point is None and qmin == 0:
            continue
        args = dict(granularity=fq.PerChannel(0), scale=scale.copy(), zero_point=zero_point)
        args["scale"].flags.writeable = False
        same(prepared(x, dtype, **args), general(x, dtype, **args))


@pytest.mark.parametrize("nan_policy", ["raise", "ignore"])
def test_nan(nan_policy):
    x = sample()
    qp = fq.choose_qparams(x, "uint8", granularity=fq.PerChannel(0))
    args = dict(granularity=fq.PerChannel(0), scale=qp.scale, zero_point=qp.zero_point,
                nan_policy=nan_policy)
    fq.quantize(x, "uint8", **args)
    x[3, 7] = np.nan
    if nan_policy == "raise":
        with pytest.raises(ValueError, match="NaN"):
            fq.quantize(x, "uint8", **args)
        with pytest.raises(ValueError, match="NaN"):
            fq.fake_quantize(x, "uint8", **args)
        return
    qt = prepared(x, "uint8", **args)
    same(qt, general(x, "uint8", **args))
    assert qt.data[3, 7] == qp.zero_point[3]


@pytest.mark.parametrize("scale,zero_point,error", [
    (np.zeros(24, np.float32), None, ValueError),
    (np.full(24, -1.0, np.float32), None, ValueError),
    (np.full(24, np.nan, np.float32), None, ValueError),
    (np.full(24, np.inf, np.float32), None, ValueError),
    (np.ones(23, np.float32), None, ValueError),
    (np.ones(24, np.float32), np.full(24, 256), ValueError),
    (np.ones(24, np.float32), np.full(24, -1), ValueError),
    (np.ones(24, np.float32), np.ones(23, np.int64), ValueError),
    (np.ones(24, np.float32), np.full(24, 2.5), TypeError),
])
def test_bad_parameters_raise_on_a_cached_plan(scale, zero_point, error):
    x = sample()
    fq.quantize(x, "uint8", granularity=fq.PerChannel(0), scale=np.ones(24, np.float32))
    with pytest.raises(error):
        fq.quantize(x, "uint8", granularity=fq.PerChannel(0), scale=scale,
                    zero_point=zero_point)
    with pytest.raises(error):
        fq.fake_quantize(x, "uint8", granularity=fq.PerChannel(0), scale=scale,
                         zero_point=zero_point)


@pytest.mark.parametrize("scale,zero_point", [
    (np.full(24, 0.05), None),                          # float64: converted
    (np.full(24, 0.05, ">f4"), None),                   # big-endian
    (np.full((24, 2), 0.05, np.float32)[:, 0], None),   # not contiguous
    (np.full(24, 0.05, np.float32), np.full(24, 3.0)),  # a float zero point
    (np.full(24, 0.05, np.float32), [3] * 24),          # a list
])
def test_other_parameters_take_the_general_path(scale, zero_point):
    x = sample()
    args = dict(granularity=fq.PerChannel(0), scale=scale, zero_point=zero_point)
    fq.quantize(x, "uint8", **args)
    assert plans.static_prepared(x, "uint8", "asymmetric", fq.PerChannel(0), scale,
                                 zero_point, False, "raise", "auto") is None
    same(fq.quantize(x, "uint8", **args), general(x, "uint8", **args))


@pytest.mark.parametrize("granularity", [fq.PerChannel(0), fq.PerChannel(1), fq.PerGroup(8, 0)],
                         ids=str)
@pytest.mark.parametrize("dtype", ["int8", "uint4"])
def test_chunks_on_the_threads(granularity, dtype):
    """Sizes past the serial one: the prepared call's chunks, as the general path's."""
    x = sample((512, 520), seed=7)
    qp = fq.choose_qparams(x, dtype, "asymmetric", granularity)
    args = dict(granularity=granularity, scale=qp.scale, zero_point=qp.zero_point)
    same(prepared(x, dtype, **args), general(x, dtype, **args))
    assert np.array_equal(fq.fake_quantize(x, dtype, **args),
                          fq.fake_quantize(x.astype(">f4"), dtype, **args))


@pytest.mark.parametrize("scale,zero_point", [
    (0.1, None), (np.float64(0.3), 3), (np.float16(0.25), np.uint8(7)),
    (np.float32(0.02), np.int64(0)), (np.array(0.02, np.float32), np.array(5)),
    (np.array(0.7), np.array(250, np.uint8)),
    (float(np.float32(0.1)) + 2.0 ** -28, None),   # a tie: half an ulp above, to even
    (float(np.float32(0.1)) - 2.0 ** -28, 9),      # a tie below
])
def test_fake_per_tensor_with_scalars(scale, zero_point):
    """Per-tensor fake quantization with given scalars (or 0-d arrays), the float64
    ones rounded to float32 in Python, half to even: the general path's values."""
    x = sample()
    want = fq.fake_quantize(x.astype(">f4"), "uint8", scale=scale, zero_point=zero_point)
    fq.fake_quantize(x, "uint8", scale=scale, zero_point=zero_point)
    assert plans.static_prepared(x, "uint8", "asymmetric", "tensor", scale, zero_point,
                                 False, "raise", "auto", fake=True) is not None
    got = fq.fake_quantize(x, "uint8", scale=scale, zero_point=zero_point)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("scale,zero_point,error", [
    (0.0, None, ValueError), (-0.5, None, ValueError), (np.nan, None, ValueError),
    (1e39, None, ValueError), (1e-46, None, ValueError), (0.5, 256, ValueError),
    (0.5, -1, ValueError), (0.5, 2.5, TypeError),
])
def test_fake_per_tensor_bad_scalars_raise(scale, zero_point, error):
    x = sample()
    fq.fake_quantize(x, "uint8", scale=0.5)
    with pytest.raises(error):
        fq.fake_quantize(x, "uint8", scale=scale, zero_point=zero_point)


def test_fake_per_tensor_cut_for_the_threads_takes_the_general_path():
    from fastq.kernels.cpu.linear.tensor import TENSOR_PARALLEL_FROM
    x = np.random.default_rng(8).standard_normal(TENSOR_PARALLEL_FROM).astype(np.float32)
    fq.fake_quantize(x, "int8", scale=0.05)
    assert plans.static_prepared(x, "int8", "asymmetric", "tensor", 0.05, None, False,
                                 "raise", "auto", fake=True) is None
    small = x[:TENSOR_PARALLEL_FROM - 1].copy()
    fq.fake_quantize(small, "int8", scale=0.05)
    got = fq.fake_quantize(small, "int8", scale=0.05)
    assert np.array_equal(got, fq.fake_quantize(x, "int8", scale=0.05)[:small.size])


def test_nearest_float32_in_any_rounding_mode():
    """``_nearest_float32`` is NumPy's conversion in the default mode (half to even),
    also under round-up with flush-to-zero: random doubles, exact midpoints, and
    values next to them."""
    from numba import njit

    from fastq.runtime.fpenv import swap_fp_control
    rng = np.random.default_rng(9)
    f = (rng.uniform(1e-3, 1e3, 20000)).astype(np.float32)
    mid = (f.astype(np.float64) + np.nextafter(f, np.float32(np.inf)).astype(np.float64)) / 2
    values = np.concatenate([rng.uniform(1e-30, 1e30, 20000), mid, np.nextafter(mid, 0),
                             np.nextafter(mid, np.inf), f.astype(np.float64)])
    want = values.astype(np.float32)
    swap = njit(lambda w: swap_fp_control(w))
    for word in (0x1F80, 0x1F80 | 0x8040 | 0x4000, 0x1F80 | 0x2000, 0x1F80 | 0x6000):
        saved = swap(np.uint32(word))
        try:
            got = [plans._nearest_float32(v) for v in values]
        finally:
            swap(np.uint32(saved))
        assert np.array_equal(np.array(got, np.float32).view(np.uint32), want.view(np.uint32))
