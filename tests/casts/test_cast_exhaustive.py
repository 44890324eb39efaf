"""fq.cast over whole input spaces: every 16-bit pattern, and (slow) every float32 pattern."""
import numpy as np
import pytest

import fastq as fq
import reference_cast as R

pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in cast:RuntimeWarning")

BF16 = R.BF16
HALF = {"float16": np.dtype(np.float16), "bfloat16": BF16}


def all16(dtype):
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


def assert_same_bits(got, want):
    gb, wb = R.bits(got), R.bits(want)
    bad = np.flatnonzero(gb != wb)
    assert bad.size == 0, [(int(i), hex(gb[i]), hex(wb[i])) for i in bad[:8]]


@pytest.mark.parametrize("src", ["float16", "bfloat16"])
@pytest.mark.parametrize("dst", ["float32", "float64"])
@pytest.mark.parametrize("rounding", ["nearest_even", "truncate"])
def test_decode_all_patterns(src, dst, rounding):
    """Every float16/bfloat16 pattern widens exactly, bit for bit as NumPy (float16) and
    ml_dtypes (bfloat16) do: subnormals normalized, inf kept, NaN payloads shifted up
    (bfloat16 -> float64 goes through float32, as ml_dtypes does, which quiets NaNs)."""
    x = all16(HALF[src])
    assert_same_bits(fq.cast(x, dst, rounding=rounding), x.astype(dst))


@pytest.mark.parametrize("src,dst", [("float16", "bfloat16"), ("bfloat16", "float16")])
@pytest.mark.parametrize("rounding", ["nearest_even", "truncate"])
def test_half_to_half_all_patterns(src, dst, rounding):
    """16-bit -> other 16-bit equals going through float32 (the exact widening)."""
    x = all16(HALF[src])
    wide = fq.cast(x, "float32")
    want = wide.astype(HALF[dst]) if rounding == "nearest_even" else R.truncate(wide, HALF[dst])
    assert_same_bits(fq.cast(x, dst, rounding=rounding), want)
    assert_same_bits(fq.cast(x, dst, rounding=rounding), fq.cast(wide, dst, rounding=rounding))


@pytest.mark.parametrize("src", ["float16", "bfloat16"])
def test_round_trip_all_patterns(src):
    """Widening then narrowing is the identity on every non-NaN pattern."""
    x = all16(HALF[src])
    for wide in ("float32", "float64"):
        back = fq.cast(fq.cast(x, wide), src)
        keep = ~np.isnan(x.astype(np.float32))
        assert_same_bits(back[keep], x[keep])


def check_float32_patterns(dst, start, stop, chunk=1 << 24):
    """Every float32 pattern in ``[start, stop)`` against NumPy / ml_dtypes."""
    offsets = np.arange(chunk, dtype=np.uint32)
    out = np.empty(chunk, HALF[dst])
    for lo in range(start, stop, chunk):
        n = min(chunk, stop - lo)
        x = (offsets[:n] + np.uint32(lo)).view(np.float32)
        fq.cast(x, dst, out=out[:n])
        assert_same_bits(out[:n], x.astype(HALF[dst]))


@pytest.mark.slow
@pytest.mark.parametrize("dst", ["float16", "bfloat16"])
def test_all_float32_patterns(dst):
    """All 2**32 float32 patterns, in chunks, against NumPy / ml_dtypes (round to nearest
    even; NaN payload rules included).  Slow: most of the time goes to NumPy's own
    (scalar) float16 conversion."""
    check_float32_patterns(dst, 0, 1 << 32)
