"""Linear quantization divides by its scale (ONNX QuantizeLinear); for one scale per
piece the CPU kernels compute that quotient from the reciprocal, with two Newton steps
on fused multiply-adds (``fastq.kernels.cpu.linear.codes.quotient``).  These tests hold
it to the true float32 division, and the codes to ``reference_quant``, at the places
where a quotient could go wrong: halfway between two codes, at the clip bounds, for
huge and tiny inputs and scales, at the ends of the scale range it is used for, and
over every float32 input for a few scales (slow)."""
import numpy as np
import pytest
from numba import njit, prange

import reference_quant as ref

import fastq as fq
from fastq.kernels.cpu.linear.codes import by_reciprocal, code_bits, quotient, reciprocal_bits

LOWEST, HIGHEST = np.float32(2.0 ** -64), np.float32(2.0 ** 64)


def scales():
    """Scales over the reciprocal's whole range, its ends and just past them (division
    there), and significands of all ones, one ulp past 1, and 1.5."""
    rng = np.random.default_rng(64)
    drawn = np.exp2(rng.uniform(-64, 64, 120)).astype(np.float32)
    ends = [LOWEST, HIGHEST, np.nextafter(LOWEST, np.float32(0)),
            np.nextafter(HIGHEST, np.float32(np.inf)), np.nextafter(LOWEST, np.float32(1))]
    shapes = np.array([0x3FFFFFFF, 0x3F800001, 0x3F7FFFFF, 0x3FC00000, 0x3C010204,
                       0x00000001, 0x00800000, 0x7F7FFFFF], np.uint32).view(np.float32)
    return [np.float32(s) for s in (*drawn, *ends, *shapes, 0.0213, 1 / 127)]


def hard_inputs(s, qmin, qmax, z, rng):
    """Float32 inputs around every half-code quotient ``(k + 0.5) * s`` (the nearest
    float32 and 3 ulps either side), around the clip bounds, huge ones whose product with
    ``1 / s`` overflows, infs, zeros, subnormals, and random bit patterns."""
    k = np.arange(qmin - z - 2, qmax - z + 2, dtype=np.float64)
    if k.size > 600:
        k = np.concatenate([k[:300], k[-300:], rng.choice(k, 600)])
    half = np.concatenate([(k + 0.5) * np.float64(s), k * np.float64(s)])
    with np.errstate(over="ignore"):
        near = half.astype(np.float32)
    near = near[np.isfinite(near)]
    around = [near]
    up, down = near.copy(), near.copy()
    with np.errstate(over="ignore"):
        for _ in range(3):
            up = np.nextafter(up, np.float32(np.inf))
            down = np.nextafter(down, np.float32(-np.inf))
            around += [up, down]
    edges = np.array([0.0, -0.0, np.inf, -np.inf, 3.4028235e38, -3.4028235e38, 1e30, -1e30,
                      1.4e-45, -1.4e-45, 1.1754944e-38], np.float32)
    noise = rng.integers(0, 1 << 32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    noise = noise[~np.isnan(noise)]
    return np.concatenate(around + [edges, noise])


@pytest.mark.parametrize("dtype,zero", [("int8", 0), ("int8", 3), ("uint8", 128),
                                        ("int16", -7), ("uint16", 40000), ("int4", -1),
                                        ("uint2", 1)])
def test_static_codes_equal_true_division(dtype, zero):
    rng = np.random.default_rng(5)
    qmin, qmax = ref.QRANGE[dtype]
    for s in scales():
        x = hard_inputs(s, qmin, qmax, zero, rng)
        qt = fq.quantize(x, dtype, scale=s, zero_point=ref.CODE_DTYPE[dtype](zero))
        want = ref.quantize_codes(x, s, ref.CODE_DTYPE[dtype](zero), dtype)
        got = np.asarray(qt.codes())
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"scale {s!r} ({np.float32(s).view(np.uint32):#x}): x "
                               f"{x[bad[:4]]!r} gave {got[bad[:4]]}, want {want[bad[:4]]}")


@pytest.mark.parametrize("dtype", ["int8", "uint4"])
def test_a_scale_per_row_equals_true_division(dtype):
    """Per channel along the first axis (a scale per row of the view): each row's
    quotients by its own reciprocal, beside rows whose scale is past the range."""
    rng = np.random.default_rng(11)
    qmin, qmax = ref.QRANGE[dtype]
    zero = (qmin + qmax + 1) // 2
    picked = scales()[::9]
    rows = [hard_inputs(s, qmin, qmax, zero, rng)[:4096] for s in picked]
    x = np.stack([np.resize(r, 4096) for r in rows])
    scale = np.array(picked, np.float32)
    zp = np.full(scale.size, zero, ref.CODE_DTYPE[dtype])
    qt = fq.quantize(x, dtype, scale=scale, zero_point=zp, granularity=fq.PerChannel(0))
    want = ref.quantize_codes(x, scale, zp, dtype, ("channel", 0))
    assert np.array_equal(np.asarray(qt.codes()), want)


def test_nan_codes_as_zero_point_and_inf_saturates_on_the_reciprocal_path():
    """A NaN, an inf or an overflowing product makes the reciprocal's quotient NaN; the
    piece is then coded by division: NaN as the zero point, the rest as the rule says."""
    s = np.float32(2.0 ** -60)
    assert by_reciprocal(s)
    x = np.linspace(-3e-17, 3e-17, 5000).astype(np.float32)
    x[[7, 1000, 4000]] = [np.nan, np.inf, -np.inf]
    x[[8, 9]] = [1e30, -3e38]
    qt = fq.quantize(x, "int8", scale=s, zero_point=np.int8(2), nan_policy="ignore")
    want = ref.quantize_codes(x, s, np.int8(2), "int8", nan_to_zero_point=True)
    assert np.array_equal(np.asarray(qt.codes()), want)
    assert np.asarray(qt.codes())[[7, 1000, 4000, 8, 9]].tolist() == [2, 127, -128, 127, -128]


def test_dynamic_infs_with_nan_policy_ignore_on_the_reciprocal_path():
    """Dynamic quantization that leaves infs out of the range codes them saturated: the
    coding pass then looks for NaN results (an inf's quotient by the reciprocal)."""
    rng = np.random.default_rng(3)
    for n in (1000, 1 << 19):  # (serial, and the threads)
        x = rng.standard_normal(n).astype(np.float32)
        x[[5, n // 2, n - 3]] = [np.inf, -np.inf, np.inf]
        for dtype in ("int8", "uint8"):
            qt = fq.quantize(x, dtype, nan_policy="ignore")
            ref.assert_matches(qt, x, dtype, nan_policy="ignore")
            qmin, qmax = ref.QRANGE[dtype]
            assert np.asarray(qt.codes())[[5, n // 2, n - 3]].tolist() == [qmax, qmin, qmax]


@njit(parallel=True, error_model="numpy")
def _mismatches(s, lo, hi):
    """Over every float32 bit pattern: how many quotients differ from IEEE division where
    ``|x / s|`` is in ``[2**-2, 3e38]``, and how many codes differ where the reciprocal's
    quotient is not NaN (NaN results are recomputed by division)."""
    ns, r = -s, np.float32(1) / s
    wrong_q = np.zeros(256, np.int64)
    wrong_c = np.zeros(256, np.int64)
    for c in prange(256):
        nq = nc = 0
        for i in range(1 << 24):
            v = np.uint32((c << 24) + i).view(np.float32)
            d, q = v / s, quotient(v, ns, r)
            ad = abs(d)
            nq += (ad >= np.float32(0.25)) & (ad < np.float32(3e38)) & (q != d)
            nc += (q == q) & (reciprocal_bits(v, ns, r, lo, hi) != code_bits(v, s, lo, hi))
        wrong_q[c], wrong_c[c] = nq, nc
    return wrong_q.sum(), wrong_c.sum()


@pytest.mark.slow
@pytest.mark.parametrize("bits", [0x3C010204, 0x3FFFFFFF, 0x1F800000, 0x5F800000])
def test_quotient_on_every_float32(bits):
    """Exhaustive: every float32 input, for a typical scale (0.0079), a significand of
    all ones, and the two ends of the range (2**-64, 2**64); ~30 s each on 2 cores."""
    s = np.uint32(bits).view(np.float32)
    assert by_reciprocal(s)
    assert _mismatches(s, np.float32(-128), np.float32(127)) == (0, 0)
