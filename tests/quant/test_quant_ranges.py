"""The range pass (``minmax``) reduces the raw bits with an unsigned and a signed integer
maximum (see ``fastq.kernels.cpu.linear.ranges``): every sign pattern a block can have, ±0, subnormals,
infs and NaNs of either sign, at every granularity, serial and parallel, against NumPy."""
import numpy as np
import pytest

import fastq as fq
import reference_quant as ref
from fastq.ops import quantization as _quantize

F32 = np.finfo(np.float32)
GRANULARITIES = ["tensor", ("channel", 0), ("channel", 1), ("group", 32, -1), ("group", 7, 0),
                 ("block", (5, 64))]
PATTERNS = ["mixed", "positive", "negative", "zeros", "tiny", "extremes", "nonfinite"]


def bits(r):
    """The bits of a range, -0 as +0 (both give the same scale and zero point)."""
    return (np.asarray(r, np.float32) + np.float32(0)).view(np.uint32)


def make(pattern, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    if pattern == "positive":
        x = np.abs(x)
    elif pattern == "negative":
        x = -np.abs(x)
    elif pattern == "zeros":
        x = rng.choice(np.array([0.0, -0.0], np.float32), shape)
    elif pattern == "tiny":  # subnormals and ±0 only
        x = (rng.integers(-(1 << 23) + 1, 1 << 23, shape).astype(np.int64)).astype(np.int32)
        x = (np.abs(x).astype(np.uint32) | (np.uint32(x < 0) << np.uint32(31))).view(np.float32)
    elif pattern == "extremes":
        x[::3] = F32.max
        x[1::5] = -F32.max
    elif pattern == "nonfinite":
        x.reshape(-1)[rng.integers(0, x.size, 9)] = [np.nan, -np.nan, np.inf, -np.inf] * 2 + [
            np.float32(np.uint32(0xFFC00123).view(np.float32))]
    # blocks of one sign inside the others
    if pattern in ("mixed", "extremes"):
        x[: shape[0] // 3] = np.abs(x[: shape[0] // 3])
        x[-shape[0] // 4:] = -np.abs(x[-shape[0] // 4:])
    return x


@pytest.mark.parametrize("shape", [(40, 96), (520, 256)], ids=["serial", "parallel"])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("granularity", GRANULARITIES, ids=str)
def test_ranges_equal_numpy(granularity, pattern, shape, rng):
    x = make(pattern, shape, rng)
    job = _quantize.QuantizeCall(x, "int8", "asymmetric", ref.as_fastq(fq, granularity), False,
                         "ignore", "cpu")
    rmin, rmax = job.value_range()
    want_min, want_max = ref.value_range(x, granularity, ignore_nonfinite=True)
    assert np.array_equal(bits(rmin), bits(want_min)) and np.array_equal(bits(rmax), bits(want_max))
    finite = np.isfinite(x).all()
    job = _quantize.QuantizeCall(x, "int8", "asymmetric", ref.as_fastq(fq, granularity), False,
                         "raise", "cpu")
    if finite:
        got = job.value_range()
        assert np.array_equal(bits(got[0]), bits(want_min))
        assert np.array_equal(bits(got[1]), bits(want_max))
    else:
        with pytest.raises(ValueError, match="NaN"):
            job.value_range()
