"""Peak memory of a quantize stays near input + output: no temporary the size of x.

NumPy reports its allocations to tracemalloc, so the traced peak is what fastq allocates
beyond the input.  4- and 2-bit codes are packed in the quantize pass (a block of
codes per chunk in cache), so they too allocate only their packed output.
"""
import tracemalloc

import numpy as np
import pytest

import fastq as fq

X = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
MIB = 1 << 20


def peak_of(fn):
    fn()  # compile outside the measurement
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kwargs", [
    dict(dtype="int8"), dict(dtype="uint8", scale=np.float32(0.01)),
    dict(dtype="int8", scheme="symmetric", granularity=fq.PerChannel(0)),
    dict(dtype="int16", scheme="symmetric", granularity=fq.PerChannel(1)),
    dict(dtype="uint8", granularity=fq.PerGroup(128, axis=0)),
])
def test_quantize_allocates_only_its_output(kwargs):
    qt, peak = peak_of(lambda: fq.quantize(X, **kwargs))
    assert peak <= qt.nbytes + MIB // 4


@pytest.mark.parametrize("kwargs", [
    dict(dtype="int4", scheme="symmetric", granularity=fq.PerGroup(128)),
    dict(dtype="uint4"), dict(dtype="int2", granularity=fq.PerChannel(1)),
])
def test_packed_quantize_allocates_only_its_output(kwargs):
    qt, peak = peak_of(lambda: fq.quantize(X, **kwargs))
    assert qt.data.nbytes == X.size * int(qt.dtype[-1]) // 8
    assert peak <= qt.data.nbytes + MIB // 4


def test_dequantize_allocates_only_its_output():
    qt = fq.quantize(X, "int8")
    y, peak = peak_of(lambda: fq.dequantize(qt))
    assert peak <= y.nbytes + MIB // 4
