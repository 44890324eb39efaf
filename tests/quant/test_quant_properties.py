"""Hypothesis properties of linear quantization, against the NumPy reference bit for bit."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference_quant as ref

import fastq as fq


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9)
moderate = st.floats(-1e4, 1e4, width=32, allow_subnormal=True)
any_finite = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def granularities(draw, shape):
    ndim = len(shape)
    kinds = ["tensor"] + (["channel", "group", "block"] if ndim else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "tensor":
        return "tensor"
    axis = draw(st.integers(-ndim, ndim - 1))
    if kind == "channel":
        return ("channel", axis)
    if kind == "group":
        return ("group", draw(st.integers(1, 6)), axis)
    return ("block", tuple(draw(st.integers(1, 5)) for _ in shape))


@st.composite
def cases(draw, elements=moderate):
    shape = draw(shapes)
    x = draw(hnp.arrays(np.float32, shape, elements=elements))
    if draw(st.booleans()):  # scale some values down to reach tiny ranges too
        x = (x * np.float32(2.0 ** draw(st.integers(-120, 0)))).astype(np.float32)
    return (x, draw(st.sampled_from(ref.DTYPES)), draw(granularities(shape)),
            draw(st.sampled_from(["asymmetric", "symmetric"])), draw(st.booleans()))


def run(x, dtype, granularity, scheme, narrow_range):
    return fq.quantize(x, dtype, scheme=scheme, granularity=ref.as_fastq(fq, granularity),
                       narrow_range=narrow_range)


@given(cases())
def test_quantize_equals_reference(case):
    x, dtype, granularity, scheme, narrow_range = case
    qt = run(*case)
    codes, scale, zero_point = ref.assert_matches(qt, x, dtype, granularity, scheme, narrow_range)
    x_hat = fq.dequantize(qt)
    expected = ref.dequantize(codes, scale, zero_point, granularity)
    assert x_hat.dtype == np.float32 and x_hat.shape == x.shape
    assert np.array_equal(x_hat.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(qt.dequantize().view(np.uint32), expected.view(np.uint32))


@given(cases(elements=any_finite))
def test_full_float32_range_matches_reference_and_stays_finite(case):
    x, dtype, granularity, scheme, narrow_range = case
    qt = run(*case)
    ref.assert_matches(qt, x, dtype, granularity, scheme, narrow_range)
    assert np.all(np.isfinite(qt.scale)) and np.all(np.asarray(qt.scale) > 0)
    codes, scale, zero_point = ref.quantize(x, dtype, granularity, scheme, narrow_range)
    with np.errstate(over="ignore"):
        expected = ref.dequantize(codes, scale, zero_point, granularity)
    assert np.array_equal(fq.dequantize(qt).view(np.uint32), expected.view(np.uint32))


@given(cases())
def test_codes_in_range_and_error_within_half_a_step(case):
    x, dtype, granularity, scheme, narrow_range = case
    qt = run(*case)
    qmin, qmax = ref.qrange(dtype, narrow_range)
    codes = np.asarray(qt.codes()).astype(np.int64)
    assert codes.size == 0 or (codes.min() >= qmin and codes.max() <= qmax)
    s = ref.expand(np.asarray(qt.scale, np.float64), granularity, x.shape)
    zp = 0 if qt.zero_point is None else ref.expand(
        np.asarray(qt.zero_point, np.float64), granularity, x.shape)
    lo, hi = (qmin - zp) * s, (qmax - zp) * s
    x64 = x.astype(np.float64)
    inside = (x64 >= lo) & (x64 <= hi)
    err = np.abs(fq.dequantize(qt).astype(np.float64) - x64)
    bound = s / 2 * (1 + 2.0 ** -20) + np.abs(x64) * 2.0 ** -22
    assert np.all((err <= bound)[inside])


@given(cases(), st.data())
def test_all_zero_groups_give_scale_one_and_exact_zeros(case, data):
    x, dtype, granularity, scheme, narrow_range = case
    x = np.zeros_like(x)
    qt = run(x, dtype, granularity, scheme, narrow_range)
    assert np.all(np.asarray(qt.scale) == 1)
    x_hat = fq.dequantize(qt)
    assert np.array_equal(x_hat.view(np.uint32), np.zeros(x.shape, np.uint32))


@given(cases())
def test_fake_quantize_equals_dequantize_of_quantize(case):
    x, dtype, granularity, scheme, narrow_range = case
    kwargs = dict(scheme=scheme, granularity=ref.as_fastq(fq, granularity),
                  narrow_range=narrow_range)
    fake = fq.fake_quantize(x, dtype, **kwargs)
    expected = fq.dequantize(fq.quantize(x, dtype, **kwargs))
    assert fake.shape == x.shape
    assert np.array_equal(np.asarray(fake, np.float32).view(np.uint32), expected.view(np.uint32))


@given(cases())
def test_choose_qparams_equals_quantize(case):
    x, dtype, granularity, scheme, narrow_range = case
    p = fq.choose_qparams(x, dtype, scheme=scheme, granularity=ref.as_fastq(fq, granularity),
                          narrow_range=narrow_range)
    _, scale, zero_point = ref.quantize(x, dtype, granularity, scheme, narrow_range)
    assert np.array_equal(np.asarray(p.scale, np.float32).view(np.uint32), scale.view(np.uint32))
    if zero_point is None:
        assert p.zero_point is None
    else:
        assert np.array_equal(np.asarray(p.zero_point), zero_point)
    # the same parameters given back statically reproduce the computed codes
    qt = fq.quantize(x, dtype, scale=p.scale, zero_point=p.zero_point,
                     granularity=ref.as_fastq(fq, granularity), narrow_range=narrow_range)
    assert np.array_equal(np.asarray(qt.codes()), np.asarray(run(*case).codes()))


@given(cases())
def test_from_codes_round_trips(case):
    x, dtype, granularity, scheme, narrow_range = case
    qt = run(*case)
    qt2 = fq.QTensor.from_codes(qt.codes(), dtype, qt.scale, qt.zero_point, qt.granularity)
    assert np.array_equal(np.asarray(qt2.data), np.asarray(qt.data))
    assert np.array_equal(np.asarray(qt2.codes()), np.asarray(qt.codes()))
    assert np.array_equal(fq.dequantize(qt2).view(np.uint32), fq.dequantize(qt).view(np.uint32))
    assert qt2.nbytes == qt.nbytes and tuple(qt2.shape) == tuple(qt.shape)


@given(cases())
def test_nbytes_bits_per_element_and_packed_length(case):
    x, dtype, granularity, scheme, narrow_range = case
    qt = run(*case)
    data = np.asarray(qt.data)
    bits = ref.BITS[dtype]
    assert data.nbytes == math.ceil(x.size * bits / 8)
    if bits < 8:
        assert data.dtype == np.uint8 and data.size == math.ceil(x.size * bits / 8)
    zp_bytes = 0 if qt.zero_point is None else np.asarray(qt.zero_point).nbytes
    assert qt.nbytes == data.nbytes + np.asarray(qt.scale).nbytes + zp_bytes
    if x.size:
        assert qt.bits_per_element == pytest.approx(8 * qt.nbytes / x.size, rel=1e-12)


@given(shapes.flatmap(lambda s: st.tuples(
    hnp.arrays(np.float32, s, elements=moderate), granularities(s))),
    st.sampled_from(ref.DTYPES), st.integers(0, 2**32 - 1))
def test_static_quantize_equals_reference(args, dtype, seed):
    x, granularity = args
    rng = np.random.default_rng(seed)
    pshape = ref.param_shape(granularity, x.shape)
    qmin, qmax = ref.QRANGE[dtype]
    scale = (2.0 ** rng.uniform(-10, 10, pshape)).astype(np.float32)
    zero_point = rng.integers(qmin, qmax + 1, pshape).astype(ref.CODE_DTYPE[dtype])
    qt = fq.quantize(x, dtype, scale=scale, zero_point=zero_point,
                     granularity=ref.as_fastq(fq, granularity))
    codes = ref.quantize_codes(x, scale, zero_point, dtype, granularity)
    assert np.array_equal(np.asarray(qt.codes()), codes)
    assert np.array_equal(np.asarray(qt.data).ravel(), ref.stored_data(codes, dtype).ravel())
    expected = ref.dequantize(codes, scale, zero_point, granularity)
    assert np.array_equal(fq.dequantize(qt).view(np.uint32), expected.view(np.uint32))
