"""Inputs that need converting (float16, bfloat16, float64, big-endian, strided) are
quantized in pieces of rows, each converted to float32 in turn: the same bits as
quantizing their float32 copy, and no temporary the size of the input."""
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.ops import quantization as _quantize

ROWS, COLS = 4104, 1030  # several pieces; rows not a multiple of the piece size
assert ROWS * COLS > 4 * _quantize.CONVERT_PIECE


@pytest.fixture(scope="module")
def x32():
    x = np.random.default_rng(3).standard_normal((ROWS, COLS)).astype(np.float32) * 4
    x[17, :5] = [0.5, -0.5, 1.5, -2.5, 0.0]  # ties
    x[2049] = 0.0  # an all-zero row
    return x


def same_qtensor(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(np.asarray(got.data), np.asarray(want.data))
    assert np.array_equal(got.scale.view(np.uint32), want.scale.view(np.uint32))
    assert (got.zero_point is None) == (want.zero_point is None)
    if want.zero_point is not None:
        assert np.array_equal(got.zero_point, want.zero_point)


GRANULARITIES = ["tensor", fq.PerChannel(0), fq.PerChannel(1), fq.PerGroup(128),
                 fq.PerGroup(64, axis=0), fq.PerBlock((3, 100))]


@pytest.mark.parametrize("granularity", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("dtype,scheme", [("int8", "asymmetric"), ("int4", "symmetric"),
                                          ("uint2", "asymmetric")])
def test_pieces_equal_the_float32_copy(x32, dtype, scheme, granularity):
    x16 = x32.astype(np.float16)
    want = fq.quantize(x16.astype(np.float32), dtype, scheme, granularity)
    same_qtensor(fq.quantize(x16, dtype, scheme, granularity), want)


@pytest.mark.parametrize("make", [
    lambda x: x.astype(ml_dtypes.bfloat16),
    lambda x: x.astype(np.float64) * (1 + 2.0 ** -30),  # rounded once to float32
    lambda x: x.astype(">f4"),
    lambda x: np.asfortranarray(x),
    lambda x: np.repeat(x, 2, axis=1)[:, ::2],
], ids=["bfloat16", "float64", "big-endian", "fortran", "strided"])
def test_pieces_of_every_layout(x32, make):
    x = make(x32)
    x_as_32 = np.ascontiguousarray(x, np.float32)
    for kwargs in [dict(dtype="int8"), dict(dtype="uint4", granularity=fq.PerGroup(32)),
                   dict(dtype="int8", scheme="symmetric", granularity=fq.PerChannel(1))]:
        same_qtensor(fq.quantize(x, **kwargs), fq.quantize(x_as_32, **kwargs))
    got = fq.fake_quantize(x, "int8", granularity=fq.PerChannel(0))
    want = fq.fake_quantize(x_as_32, "int8", granularity=fq.PerChannel(0))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    p = fq.choose_qparams(x, "uint8", granularity=fq.PerGroup(64, axis=0))
    assert np.array_equal(p.scale, fq.choose_qparams(x_as_32, "uint8",
                                                     granularity=fq.PerGroup(64, axis=0)).scale)


def test_nan_in_a_late_piece(x32):
    x = x32.astype(np.float16)
    x[-1, -1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8")
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "int8", scale=np.float32(0.1))
    qt = fq.quantize(x, "int8", nan_policy="ignore")
    assert qt.codes()[-1, -1] == qt.zero_point


def test_peak_memory_stays_below_a_float32_copy(x32):
    x = x32.astype(np.float16)
    fq.quantize(x[:8], "int8")  # compile outside the measurement
    fq.quantize(x, "int8")
    tracemalloc.start()
    try:
        qt = fq.quantize(x, "int8")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the codes plus about two float32 pieces, far below the 17 MB float32 copy
    assert peak <= qt.data.nbytes + 3 * 4 * _quantize.CONVERT_PIECE
    assert peak < x.size * 4


@pytest.mark.parametrize("granularity", ["tensor", fq.PerChannel(0), fq.PerChannel(1),
                                         fq.PerGroup(128), fq.PerGroup(64, axis=0)])
@pytest.mark.parametrize("dtype", ["int8", "uint16"])
def test_streamed_outputs_equal_cached(monkeypatch, x32, dtype, granularity):
    """Outputs larger than the last-level cache are written with non-temporal stores
    (``fastq.kernels.cpu.word.stream_out``): quantize, fake_quantize and dequantize give the
    same bits, starting from any 64-byte line offset of the output."""
    from fastq.kernels.cpu import parallel as _parallel
    x = x32.reshape(-1)[3:3 + 4096 * 257].reshape(4096, 257)  # odd rows: any alignment
    want = fq.quantize(x, dtype, granularity=granularity)
    want_fake = fq.fake_quantize(x, dtype, granularity=granularity)
    want_back = fq.dequantize(want)
    monkeypatch.setattr(_parallel, "STREAM_ABOVE", 0)
    same_qtensor(fq.quantize(x, dtype, granularity=granularity), want)
    assert np.array_equal(fq.fake_quantize(x, dtype, granularity=granularity).view(np.uint32),
                          want_fake.view(np.uint32))
    assert np.array_equal(fq.dequantize(want).view(np.uint32), want_back.view(np.uint32))
