"""Static per-tensor quantization on a call whose plan is cached (``fastq.kernels.cpu.linear.tensor``:
the kernel rounds and checks the scale, places the codes on the input's lines and sets
the thread count; serial sizes call its compiled code directly): the same results as the general path and the reference."""
import numba
import numpy as np
import pytest

import reference_quant as ref

import fastq as fq
from fastq.kernels.cpu.linear.tensor import TENSOR_PARALLEL_FROM
from fastq.ops import plans as _plans

DTYPES = ["int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2"]


@pytest.fixture(autouse=True, scope="module")
def regions_unlocked():
    """The prepared path runs once a parallel region has (the threading layer known)."""
    fq.quantize(np.ones(TENSOR_PARALLEL_FROM, np.float32), "int8", scale=1.0)


def takes_prepared_path(x, dtype, scale, zero_point=None, **kwargs):
    """The QTensor of a second call, after checking that it takes the prepared path."""
    first = fq.quantize(x, dtype, scale=scale, zero_point=zero_point, **kwargs)
    args = dict(scheme="asymmetric", granularity="tensor", narrow_range=False,
                nan_policy="raise", backend="auto") | kwargs
    assert _plans.static_per_tensor(x, dtype, scale=scale, zero_point=zero_point,
                                        **args) is not None
    second = fq.quantize(x, dtype, scale=scale, zero_point=zero_point, **kwargs)
    assert np.array_equal(first.data, second.data)
    assert first.scale.dtype == second.scale.dtype == np.float32
    assert first.scale.shape == second.scale.shape == ()
    assert first.scale.view(np.uint32) == second.scale.view(np.uint32)
    if first.zero_point is None:
        assert second.zero_point is None
    else:
        assert first.zero_point.dtype == second.zero_point.dtype
        assert first.zero_point.shape == second.zero_point.shape == ()
        assert first.zero_point == second.zero_point
    return second


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 16) + 1237, TENSOR_PARALLEL_FROM + 1237])
def test_matches_reference_at_every_input_offset(dtype, size):
    """Inputs starting 0..15 float32 elements past a 64-byte line (a lead before the
    first line, rows, a tail); codes of whole lines on lines."""
    qmin, qmax = ref.qrange(dtype)
    zero_point = np.dtype(ref.CODE_DTYPE[dtype]).type((qmin + qmax + 1) // 2 | 1)
    x = (np.random.default_rng(size).standard_normal(size) * 40).astype(np.float32)
    x[::97] = np.float32(0.25) * (np.arange(x[::97].size) - 30.5)  # ties
    buf = np.empty(size + 32, np.float32)
    base = (-buf.ctypes.data % 64) // 4
    for offset in range(16) if size else (0,):
        xv = buf[base + offset:base + offset + size]
        xv[:] = x
        qt = takes_prepared_path(xv, dtype, np.float32(0.25), zero_point)
        want = ref.quantize_codes(x, np.float32(0.25), zero_point, dtype)
        assert np.array_equal(qt.codes(), want)
        lead = min((16 - offset) % 16, size)  # (elements before x's first line)
        if dtype[-1] in "86" and size >= TENSOR_PARALLEL_FROM:
            # (8 and 16 bits in chunks: the codes of that line on one too; a serial size
            # takes its codes from np.empty as they come, in cache either way)
            assert (qt.data.ctypes.data + lead * qt.data.itemsize) % 64 == 0


@pytest.mark.parametrize("scale", [0.1, np.float64(1e-40), np.float16(0.3), np.float32(7),
                                   np.array(0.1, np.float32), np.array(1e-40),
                                   np.array(0.3, np.float16), np.array(7, ">f4")])
@pytest.mark.parametrize("zero_point", [None, 3, np.uint8(250), np.int64(0),
                                        np.array(3), np.array(250, np.uint8),
                                        np.array(5, ">i2")])
def test_scalar_types(scale, zero_point):
    """Python and NumPy scalars, and 0-d arrays (as ``choose_qparams`` returns them, of
    either byte order), take the prepared path with the general path's results."""
    x = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    qt = takes_prepared_path(x, "uint8", scale, zero_point)
    codes, scale32, zp = ref.quantize_codes(x, np.float32(scale), zero_point or 0, "uint8"), \
        np.float32(scale), zero_point or 0
    assert np.array_equal(qt.data, codes) and qt.scale == scale32 and qt.zero_point == zp


@pytest.mark.parametrize("dtype,scheme", [("uint8", "asymmetric"), ("int8", "asymmetric"),
                                          ("int8", "symmetric"), ("uint4", "asymmetric")])
def test_choose_qparams_result_takes_the_prepared_path(dtype, scheme):
    """The parameters of ``choose_qparams`` given back to ``quantize`` (0-d arrays) run
    the prepared path, with the codes of the dynamic quantization that chose them."""
    x = np.random.default_rng(4).standard_normal(3000).astype(np.float32)
    qp = fq.choose_qparams(x, dtype, scheme)
    qt = takes_prepared_path(x, dtype, qp.scale, qp.zero_point)
    want = fq.quantize(x, dtype, scheme)
    assert np.array_equal(qt.data, want.data)
    assert qt.scale.view(np.uint32) == want.scale.view(np.uint32)


@pytest.mark.parametrize("scale,zero_point", [
    (np.array(0.5, np.longdouble), None),      # (float() would round it to float64 first)
    (np.array([0.5], np.float32), None),       # (one element, not 0-d)
    (np.array(0.5, np.float32), np.array(3.0)),  # (a float zero point)
    (np.array(0.5, np.float32), np.array(300)),  # (out of range: the general path raises)
])
def test_other_parameter_arrays_take_the_general_path(scale, zero_point):
    x = np.random.default_rng(6).standard_normal(2000).astype(np.float32)
    fq.quantize(x, "uint8", scale=0.5)
    assert _plans.static_per_tensor(x, "uint8", "asymmetric", "tensor", scale, zero_point,
                                    False, "raise", "auto") is None
    try:
        want = fq.quantize(x.copy(), "uint8", scale=scale, zero_point=zero_point)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            fq.quantize(x, "uint8", scale=scale, zero_point=zero_point)
    else:
        got = fq.quantize(x, "uint8", scale=scale, zero_point=zero_point)
        assert np.array_equal(got.data, want.data)


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, np.float32(-np.inf), 1e-46,
                                   np.array(0.0, np.float32), np.array(np.nan)])
def test_bad_scale_raises_on_a_cached_plan(scale):
    x = np.ones(300, np.float32)
    fq.quantize(x, "int8", scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        fq.quantize(x, "int8", scale=scale)


@pytest.mark.parametrize("zero_point", [256, -1, True, 3.5, np.int16(-3)])
def test_bad_zero_point_takes_the_general_path(zero_point):
    x = np.ones(300, np.float32)
    fq.quantize(x, "uint8", scale=1.0, zero_point=1)
    try:
        want = fq.quantize(x.copy(), "uint8", scale=1.0, zero_point=zero_point)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            fq.quantize(x, "uint8", scale=1.0, zero_point=zero_point)
    else:
        got = fq.quantize(x, "uint8", scale=1.0, zero_point=zero_point)
        assert np.array_equal(got.data, want.data)


@pytest.mark.parametrize("size", [300, 1 << 17])
def test_nan(size):
    x = np.zeros(size, np.float32)
    x[[0, 17, size - 1]] = np.nan
    fq.quantize(np.ones(size, np.float32), "int8", scale=1.0, zero_point=5)
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8", scale=1.0, zero_point=5)
    takes_prepared_path(np.ones(size, np.float32), "int8", 1.0, 5, nan_policy="ignore")
    qt = fq.quantize(x, "int8", scale=1.0, zero_point=5, nan_policy="ignore")
    assert (qt.data == 5).all()


def test_thread_count_is_applied(monkeypatch):
    from fastq.runtime import threads  # (a quiet machine: every core is free)
    monkeypatch.setattr(threads, "_load", dict(threads._load, checked=None))
    monkeypatch.setattr(threads, "system_load", lambda: (0.0, 0.0))
    x = np.random.default_rng(2).standard_normal(1 << 18).astype(np.float32)
    want = takes_prepared_path(x, "int8", 0.01)
    numba.set_num_threads(1)  # (set outside fastq: this kernel applies its own count)
    try:
        fq.set_num_threads(1)  # one thread: the kernel runs in the calling thread
        got = fq.quantize(x, "int8", scale=0.01)
    finally:
        fq.set_num_threads(None)
    assert np.array_equal(got.data, want.data)
    fq.quantize(x, "int8", scale=0.01)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
