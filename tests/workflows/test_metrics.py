"""fq.metrics against the NumPy float64 formulas."""
import math

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.core.layout import SERIAL_BELOW

FIELDS = ("mae", "mse", "rmse", "max_abs", "sqnr_db", "cosine")


def reference_metrics(x, x_hat):
    """NumPy float64 formulas (pairwise sums)."""
    a = np.asarray(x).astype(np.float64).reshape(-1)
    b = np.asarray(x_hat).astype(np.float64).reshape(-1)
    e = a - b
    se, sx, sh = np.sum(e * e), np.sum(a * a), np.sum(b * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        sqnr = np.inf if se == 0 else 10 * np.log10(sx / se)
    cosine = np.dot(a, b) / (np.sqrt(sx) * np.sqrt(sh))
    return dict(mae=np.mean(np.abs(e)), mse=np.mean(e * e), rmse=np.sqrt(np.mean(e * e)),
                max_abs=np.max(np.abs(e)), sqnr_db=sqnr, cosine=cosine)


def assert_close(m, ref, rtol=1e-12):
    for f in FIELDS:
        got, want = getattr(m, f), float(ref[f])
        assert isinstance(got, float), f
        if math.isinf(want) or math.isnan(want):
            assert got == want or (math.isnan(got) and math.isnan(want)), f
        else:
            assert got == pytest.approx(want, rel=rtol, abs=1e-300), f


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 1000, SERIAL_BELOW + 12345])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_numpy(n, dtype, rng):
    x = rng.standard_normal(n).astype(dtype)
    x_hat = (x + rng.standard_normal(n) * 1e-3).astype(dtype)
    m = fq.metrics(x, x_hat)
    assert_close(m, reference_metrics(x, x_hat))
    assert m.max_abs == float(np.max(np.abs(x.astype(np.float64) - x_hat)))  # exact
    assert m.rmse == math.sqrt(m.mse)


def test_quantization_error_example(rng):
    x = rng.standard_normal((64, 33)).astype(np.float32)
    scale = np.float32(np.abs(x).max() / 127)
    x_hat = (np.clip(np.rint(x / scale), -127, 127) * scale).astype(np.float32)
    m = fq.metrics(x, x_hat)
    assert_close(m, reference_metrics(x, x_hat))
    assert 35 < m.sqnr_db < 50 and m.cosine > 0.999
    assert m.max_abs <= scale / 2 * (1 + 1e-6)


def test_mixed_and_other_dtypes(rng):
    x = rng.standard_normal(300)
    for h in (x.astype(np.float32), x.astype(np.float16), x.astype(ml_dtypes.bfloat16),
              np.rint(x * 4).astype(np.int32)):
        assert_close(fq.metrics(x, h), reference_metrics(x, h.astype(np.float64)))
    assert_close(fq.metrics([1, 2, 3], [1, 2, 4]), reference_metrics([1, 2, 3], [1, 2, 4]))


def test_layouts(rng):
    x = rng.standard_normal((40, 30)).astype(np.float32)
    h = x + np.float32(0.01)
    for xa, ha in ((x.T, h.T), (x[::-1, ::3], h[::-1, ::3]), (x.astype(">f4"), h)):
        assert_close(fq.metrics(xa, ha), reference_metrics(xa, ha))
    assert_close(fq.metrics(np.float32(2), np.float32(1.5)), reference_metrics(2.0, 1.5))
    ro = x.copy()
    ro.flags.writeable = False
    assert_close(fq.metrics(ro, h), reference_metrics(ro, h))


def test_identical_and_zero_cases():
    x = np.array([1.0, -2.0, 3.0], np.float32)
    m = fq.metrics(x, x)
    assert (m.mae, m.mse, m.rmse, m.max_abs, m.sqnr_db, m.cosine) == (0, 0, 0, 0, math.inf, 1.0)
    z = np.zeros(5)
    m = fq.metrics(z, z)
    assert m.sqnr_db == math.inf and m.cosine == 1.0 and m.mse == 0
    m = fq.metrics(z, np.ones(5))
    assert m.sqnr_db == -math.inf and m.cosine == 0.0 and m.mse == 1.0
    m = fq.metrics(np.ones(5), z)
    assert m.sqnr_db == 0.0 and m.cosine == 0.0
    assert fq.metrics([1.0, 2.0], [-1.0, -2.0]).cosine == pytest.approx(-1.0)


@pytest.mark.parametrize("where", ["x", "x_hat"])
@pytest.mark.parametrize("n", [5, 40, SERIAL_BELOW + 7])
def test_nan_gives_nan(where, n):
    x = np.ones(n, np.float32)
    h = np.full(n, 0.5, np.float32)
    (x if where == "x" else h)[n // 2] = np.nan
    m = fq.metrics(x, h)
    assert all(math.isnan(getattr(m, f)) for f in FIELDS)


def test_infinities_follow_the_formulas():
    m = fq.metrics(np.array([np.inf, 1.0]), np.array([1.0, 1.0]))
    assert m.max_abs == math.inf and m.mse == math.inf
    m = fq.metrics(np.array([np.inf, 1.0]), np.array([np.inf, 1.0]))
    assert math.isnan(m.mse) and math.isnan(m.max_abs)


def test_deterministic_across_threads(rng):
    x = rng.standard_normal(4 * SERIAL_BELOW + 3)
    h = x + rng.standard_normal(x.size) * 1e-3
    try:
        fq.set_num_threads(1)
        one = fq.metrics(x, h)
        fq.set_num_threads(2 if fq.get_num_threads() < 2 else fq.get_num_threads())
    finally:
        fq.set_num_threads(None)
    assert fq.metrics(x, h) == one


def test_bad_arguments():
    with pytest.raises(ValueError, match="x_hat"):
        fq.metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="x_hat"):
        fq.metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x_hat"):
        fq.metrics(np.zeros((2, 3)), np.zeros(3))  # no broadcasting
    with pytest.raises(ValueError, match="empty"):
        fq.metrics(np.zeros(0), np.zeros(0))
    with pytest.raises(TypeError, match="x"):
        fq.metrics(np.zeros(3, complex), np.zeros(3))
    with pytest.raises(TypeError, match="x_hat"):
        fq.metrics(np.zeros(3), ["a", "b", "c"])
    with pytest.raises(TypeError, match="x"):
        fq.metrics(np.array([None, 1.0]), np.zeros(2))


def test_result_type():
    m = fq.metrics([1.0], [0.0])
    assert isinstance(m, fq.Metrics)
    with pytest.raises(Exception):
        m.mse = 1.0  # frozen
