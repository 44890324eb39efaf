"""The quantize kernels compute ``x / s`` as ``float32(float64(x) * (1 / float64(s)))``.

That equals the correctly rounded float32 division (ONNX QuantizeLinear's true division)
for every float32 x and s: the float64 product is within 2**-52 (relative) of x / s, and a
quotient of 24-bit significands that is not a float32 or a float32 midpoint is at least
~2**-49 away from every float32 midpoint.  Checked here on ties, near-ties and random data.
"""
import numpy as np
import pytest


def via_reciprocal(x, s):
    return (x.astype(np.float64) * (1.0 / s.astype(np.float64))).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_random_bits(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    s = rng.integers(0x00800000, 0x7F800000, x.size, dtype=np.uint64).astype(np.uint32)
    s = s.view(np.float32)  # positive normal scales
    with np.errstate(all="ignore"):
        expect, got = x / s, via_reciprocal(x, s)
    assert np.array_equal(expect.view(np.uint32), got.view(np.uint32))


def test_ties_and_near_ties():
    rng = np.random.default_rng(7)
    s = rng.uniform(1e-4, 10, 200_000).astype(np.float32)
    k = rng.integers(-200, 200, s.size).astype(np.float32) + np.float32(0.5)
    x = (k * s).astype(np.float32)
    near = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])
    ss = np.concatenate([s, s, s])
    assert np.array_equal((near / ss).view(np.uint32), via_reciprocal(near, ss).view(np.uint32))


def test_fastq_quantize_uses_it_bit_exactly():
    fq = pytest.importorskip("fastq")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 1024)).astype(np.float32) * 3
    s = np.float32(0.0123)
    codes = fq.quantize(x, "int8", scale=s).codes()
    assert np.array_equal(codes, np.clip(np.rint(x / s), -128, 127).astype(np.int8))
