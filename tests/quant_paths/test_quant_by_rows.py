"""Dynamic quantization in one kernel call.  Where every row of the canonical view is one
parameter group (``PerChannel`` on the first axis, ``PerGroup`` along the last, ...), or
every column of a block row (``PerGroup`` along the first axis), it runs in one pass:
each row's (block row's) ranges, scales and zero points, then its codes, while it is in
cache.  Per tensor, the range pass, the parameters and the quantize pass run in one call.
It gives the bits of the two-pass path (range pass, then quantize pass) in every case."""
import ml_dtypes
import numpy as np
import pytest

import reference_quant as ref

import fastq as fq
from fastq.ops import quantization as _quantize

X = np.random.default_rng(5).standard_normal((96, 200)).astype(np.float32) * 3
X[3] = 0.0  # an all-zero row
X[4] = np.abs(X[4])  # one-signed rows
X[5] = -np.abs(X[5])
X[6, :4] = [0.5, 1.5, -2.5, 1e-40]  # ties and a subnormal
BAD = X.copy()
BAD[7, 3], BAD[8, 9], BAD[9, 0], BAD[9, 1] = np.nan, -np.inf, np.inf, -np.nan

CASES = [("int8", "asymmetric", False), ("uint8", "symmetric", False),
         ("int8", "symmetric", True), ("int16", "asymmetric", False),
         ("int4", "symmetric", False), ("uint4", "asymmetric", False),
         ("int2", "asymmetric", True)]
GRANULARITIES = [fq.PerTensor(), fq.PerChannel(0), fq.PerChannel(1), fq.PerGroup(40), fq.PerGroup(200),
                 fq.PerBlock((1, 64)),  # (64 does not divide 200: partial last groups)
                 fq.PerGroup(8, axis=0), fq.PerGroup(36, axis=0)]  # (block rows)


def two_pass(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(_quantize, "ROW_IN_CACHE", 0)  # in_one_call() is False: range pass first
        m.setattr(_quantize, "BLOCK_ROW_IN_CACHE", 0)
        m.setattr(_quantize, "_force_two_passes", True)
        return fn()


def same(got, want):
    if isinstance(want, fq.QTensor):
        assert np.array_equal(got.data, want.data)
        assert np.array_equal(got.scale.view(np.uint32), want.scale.view(np.uint32))
        assert (got.zero_point is None) == (want.zero_point is None)
        if want.zero_point is not None:
            assert got.zero_point.dtype == want.zero_point.dtype
            assert np.array_equal(got.zero_point, want.zero_point)
    else:
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_path_is_taken():
    job = _quantize.QuantizeCall(X, "int8", "asymmetric", fq.PerChannel(0), False, "raise", "cpu")
    assert job.in_one_call()
    job = _quantize.QuantizeCall(X, "int8", "asymmetric", fq.PerChannel(1), False, "raise", "cpu")
    assert job.in_one_call()  # (two passes, range then codes, in one kernel call)
    job = _quantize.QuantizeCall(X.astype(np.float16), "int8", "asymmetric", fq.PerChannel(1), False,
                         "raise", "cpu")
    assert not job.in_one_call()  # (converted piece by piece: the ranges need them all)
    job = _quantize.QuantizeCall(X, "int8", "asymmetric", fq.PerGroup(8, axis=0), False, "raise",
                         "cpu")
    assert job.in_one_call()  # (block rows of 8 rows, a range per column in each)
    assert _quantize.QuantizeCall(X, "int8", "asymmetric", "tensor", False, "raise", "cpu").in_one_call()
    job = _quantize.QuantizeCall(X.astype(np.float16), "int8", "asymmetric", "tensor", False, "raise",
                         "cpu")
    assert not job.in_one_call()  # (converted piece by piece: the range needs them all)


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("dtype,scheme,narrow", CASES)
@pytest.mark.parametrize("source", ["float32", "float16", "bfloat16", "big-endian"])
def test_equals_two_passes(monkeypatch, dtype, scheme, narrow, granularity, source):
    x = {"float32": X, "float16": X.astype(np.float16),
         "bfloat16": X.astype(ml_dtypes.bfloat16), "big-endian": X.astype(">f4")}[source]
    kw = dict(scheme=scheme, granularity=granularity, narrow_range=narrow)
    same(fq.quantize(x, dtype, **kw), two_pass(monkeypatch, lambda: fq.quantize(x, dtype, **kw)))
    same(fq.fake_quantize(x, dtype, **kw),
         two_pass(monkeypatch, lambda: fq.fake_quantize(x, dtype, **kw)))


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("dtype", ["int8", "uint4"])
def test_nan_and_inf_rows(monkeypatch, dtype, granularity):
    kw = dict(granularity=granularity, nan_policy="ignore")
    same(fq.quantize(BAD, dtype, **kw), two_pass(monkeypatch, lambda: fq.quantize(BAD, dtype, **kw)))
    same(fq.fake_quantize(BAD, dtype, **kw),
         two_pass(monkeypatch, lambda: fq.fake_quantize(BAD, dtype, **kw)))
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(BAD, dtype, granularity=granularity)
    inf_only = np.where(np.isnan(BAD), 0, BAD).astype(np.float32)
    with pytest.raises(ValueError, match="inf"):
        fq.quantize(inf_only, dtype, granularity=granularity)
    with pytest.raises(ValueError, match="inf"):
        fq.fake_quantize(inf_only, dtype, granularity=granularity)


def test_large_parallel(monkeypatch):
    x = np.random.default_rng(1).standard_normal((2048, 1024)).astype(np.float32)
    for kw in (dict(granularity=fq.PerChannel(0), scheme="symmetric"),
               dict(granularity=fq.PerGroup(128)), dict(granularity=fq.PerGroup(32))):
        for dtype in ("int8", "int4"):
            same(fq.quantize(x, dtype, **kw),
                 two_pass(monkeypatch, lambda: fq.quantize(x, dtype, **kw)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint2", "int16"])
@pytest.mark.parametrize("n", [5, 16384 * 3, 16384 * 40 + 1001, 16384 * 200 + 7])
def test_per_tensor_in_one_call(monkeypatch, dtype, n):
    """Per tensor, in one call: a range in parallel parts and a flat tail, then the codes
    (packed too); NaN and inf in the first part, a middle one and the tail."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 2).astype(np.float32)
    for scheme in ("asymmetric", "symmetric"):
        for kw in (dict(scheme=scheme), dict(scheme=scheme, narrow_range=True)):
            qt = fq.quantize(x, dtype, **kw)
            ref.assert_matches(qt, x, dtype, scheme=scheme, **{k: v for k, v in kw.items()
                                                                 if k == "narrow_range"})
            same(qt, two_pass(monkeypatch, lambda: fq.quantize(x, dtype, **kw)))
            same(fq.fake_quantize(x, dtype, **kw),
                 two_pass(monkeypatch, lambda: fq.fake_quantize(x, dtype, **kw)))
    bad = x.copy()
    bad[[0, n // 2, n - 1]] = [np.nan, -np.inf, 3e38]
    bad[n // 3] = np.float32(-7.5)  # the finite minimum, beside the NaN and inf
    for policy in ("ignore", "raise"):
        kw = dict(nan_policy=policy)
        if policy == "raise":
            with pytest.raises(ValueError, match="NaN"):
                fq.quantize(bad, dtype, **kw)
            with pytest.raises(ValueError, match="inf"):
                fq.quantize(np.nan_to_num(bad, nan=0.0, posinf=np.inf, neginf=-np.inf),
                            dtype, **kw)
            continue
        qt = fq.quantize(bad, dtype, **kw)
        ref.assert_matches(qt, bad, dtype, nan_policy=policy)
        same(qt, two_pass(monkeypatch, lambda: fq.quantize(bad, dtype, **kw)))
        same(fq.fake_quantize(bad, dtype, **kw),
             two_pass(monkeypatch, lambda: fq.fake_quantize(bad, dtype, **kw)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint2"])
@pytest.mark.parametrize("policy", ["raise", "ignore"])
def test_per_tensor_in_one_call_at_every_input_offset(monkeypatch, dtype, policy):
    """Rows start on x's first 64-byte line: the elements before it (up to 15) hold the
    minimum, the maximum and, ignored, a NaN and an inf; their range joins the rows'."""
    n = 16384 * 5 + 77
    x = (np.random.default_rng(3).standard_normal(n)).astype(np.float32)
    x[:3] = [-9.5, 11.25, 0.5]
    if policy == "ignore":
        x[3:5] = [np.nan, -np.inf]
    buf = np.empty(n + 32, np.float32)
    base = (-buf.ctypes.data % 64) // 4
    for offset in range(16):
        xv = buf[base + offset:base + offset + n]
        xv[:] = x
        qt = fq.quantize(xv, dtype, nan_policy=policy)
        ref.assert_matches(qt, x, dtype, nan_policy=policy)
        same(qt, two_pass(monkeypatch, lambda: fq.quantize(xv, dtype, nan_policy=policy)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint2"])
@pytest.mark.parametrize("shape", [(3000, 129), (1003, 1024), (5, 64)])
def test_per_channel_last_axis_in_one_call(monkeypatch, dtype, shape):
    """PerChannel on the last axis, in one call: column ranges in parts of the rows (on
    the threads), then the codes; NaN and inf in the first part, a middle one and the
    last row."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    g = fq.PerChannel(1)
    for scheme in ("asymmetric", "symmetric"):
        qt = fq.quantize(x, dtype, scheme=scheme, granularity=g)
        ref.assert_matches(qt, x, dtype, ("channel", 1), scheme)
        same(qt, two_pass(monkeypatch, lambda: fq.quantize(x, dtype, scheme=scheme,
                                                           granularity=g)))
        same(fq.fake_quantize(x, dtype, scheme=scheme, granularity=g),
             two_pass(monkeypatch, lambda: fq.fake_quantize(x, dtype, scheme=scheme,
                                                            granularity=g)))
    bad = x.copy()
    bad[0, 3], bad[shape[0] // 2, 3], bad[-1, -1] = np.nan, -np.inf, np.inf
    kw = dict(granularity=g, nan_policy="ignore")
    qt = fq.quantize(bad, dtype, **kw)
    ref.assert_matches(qt, bad, dtype, ("channel", 1), nan_policy="ignore")
    same(qt, two_pass(monkeypatch, lambda: fq.quantize(bad, dtype, **kw)))
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(bad, dtype, granularity=g)
    with pytest.raises(ValueError, match="inf"):
        fq.quantize(np.where(np.isnan(bad), 0, bad).astype(np.float32), dtype, granularity=g)


# ---------------------------------------------------------------- a scale per column
# (PerChannel on the last axis, PerGroup along the first): rows go four at a time where
# they share their parameters, one at a time at block edges, chunk ends and where packed
# rows share a byte.

@pytest.mark.parametrize("shape", [(103, 64), (96, 30), (45, 257)])
@pytest.mark.parametrize("granularity", [("channel", 1), ("group", 6, 0), ("group", 7, 0)],
                         ids=str)
@pytest.mark.parametrize("dtype", ["int8", "uint16", "int4", "uint2"])
def test_columns_equal_the_reference(shape, granularity, dtype):
    import reference_quant as ref
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x[5, 1], x[6, 2], x[40, 0] = np.nan, np.inf, -np.nan
    g = ref.as_fastq(fq, granularity)
    for scheme in ("asymmetric", "symmetric"):
        qt = fq.quantize(x, dtype, scheme=scheme, granularity=g, nan_policy="ignore")
        ref.assert_matches(qt, x, dtype, granularity, scheme, nan_policy="ignore")
        fake = fq.fake_quantize(x, dtype, scheme=scheme, granularity=g, nan_policy="ignore")
        assert np.array_equal(fake.view(np.uint32), fq.dequantize(qt).view(np.uint32))
    big = np.tile(x, (40, 1))  # parallel chunks
    qt = fq.quantize(big, dtype, granularity=g, nan_policy="ignore")
    ref.assert_matches(qt, big, dtype, granularity, nan_policy="ignore")
