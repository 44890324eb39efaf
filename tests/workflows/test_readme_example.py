"""The README's worked example: one 4x4 float32 tensor quantized to int8 four ways.

``readme_numbers()`` computes the codes and mean absolute round-trip errors with the NumPy
reference (``tests/reference_quant.py``); run
``PYTHONPATH=tests python tests/workflows/test_readme_example.py`` to print them for the
README.  The tests pin the per-tensor asymmetric numbers and check that fastq reproduces
every variant bit for bit.
"""
import numpy as np
import pytest

import reference_quant as ref

X = np.array([[-0.6870, 0.2607, -0.7718, 0.0841],
              [0.6558, -1.1711, -1.0713, 0.2405],
              [1.4967, -0.6928, 0.7961, -1.4614],
              [0.5689, -0.5227, -1.3111, -0.8343]], dtype=np.float32)

ASYMMETRIC_CODES = [[-61, 20, -69, 5], [55, -103, -94, 19],
                    [127, -62, 67, -128], [47, -47, -115, -74]]
ASYMMETRIC_MAE = 0.002495

VARIANTS = {  # name -> (granularity, scheme)
    "per-tensor asymmetric": ("tensor", "asymmetric"),
    "per-tensor symmetric": ("tensor", "symmetric"),
    "per-channel (axis 0) symmetric": (("channel", 0), "symmetric"),
    "per-group (2) symmetric": (("group", 2, -1), "symmetric"),
    "per-channel (axis 0) asymmetric": (("channel", 0), "asymmetric"),
    "per-group (2) asymmetric": (("group", 2, -1), "asymmetric"),
}


def readme_numbers():
    """``{name: (codes, scale, zero_point, mae)}`` for the README, from the reference."""
    out = {}
    for name, (granularity, scheme) in VARIANTS.items():
        codes, scale, zero_point = ref.quantize(X, "int8", granularity, scheme)
        x_hat = ref.dequantize(codes, scale, zero_point, granularity)
        out[name] = (codes, scale, zero_point, ref.mae(X, x_hat))
    return out


def test_reference_reproduces_the_published_numbers():
    codes, scale, zero_point, mae = readme_numbers()["per-tensor asymmetric"]
    assert codes.tolist() == ASYMMETRIC_CODES
    assert abs(mae - ASYMMETRIC_MAE) < 1e-6
    assert int(zero_point) == -2


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fastq_matches_reference(fq, name):
    granularity, scheme = VARIANTS[name]
    codes, scale, zero_point, mae = readme_numbers()[name]
    qt = fq.quantize(X, "int8", scheme=scheme, granularity=ref.as_fastq(fq, granularity))
    assert np.array_equal(np.asarray(qt.codes()).view(np.uint8), codes.view(np.uint8))
    assert np.array_equal(np.asarray(qt.scale, np.float32).view(np.uint32),
                          np.asarray(scale, np.float32).view(np.uint32))
    if zero_point is None:
        assert qt.zero_point is None
    else:
        assert np.array_equal(np.asarray(qt.zero_point), zero_point)
    x_hat = fq.dequantize(qt)
    assert np.array_equal(x_hat.view(np.uint32),
                          ref.dequantize(codes, scale, zero_point, granularity).view(np.uint32))
    assert abs(float(np.mean(np.abs(x_hat.astype(np.float64) - X))) - mae) < 1e-9


def test_fastq_published_numbers(fq):
    qt = fq.quantize(X, "int8")
    assert np.asarray(qt.codes()).tolist() == ASYMMETRIC_CODES
    x_hat = fq.dequantize(qt)
    assert abs(float(np.mean(np.abs(x_hat.astype(np.float64) - X))) - ASYMMETRIC_MAE) < 1e-6


if __name__ == "__main__":
    np.set_printoptions(precision=8)
    for name, (codes, scale, zero_point, mae) in readme_numbers().items():
        print(f"{name}: MAE {mae:.6f}, scale {np.asarray(scale).tolist()}, "
              f"zero_point {None if zero_point is None else np.asarray(zero_point).tolist()}")
        print(codes)
