"""Calibration beside ONNX Runtime: the entropy (KL) threshold search over one 2048-bin
histogram, fastq's ``Calibrator(observer="entropy")`` and ONNX Runtime's
``HistogramCollector(method="entropy", num_bins=2048)`` on the same data."""
import contextlib
import io

import numpy as np
import pytest

import fastq as fq

X = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)


def test_entropy_fastq(benchmark):
    benchmark.group = "entropy threshold, 2048 bins"
    cal = fq.Calibrator("int8", observer="entropy").update(X)
    benchmark.pedantic(cal.ranges, warmup_rounds=1, rounds=5)


def test_entropy_onnxruntime(benchmark):
    calibrate = pytest.importorskip("onnxruntime.quantization.calibrate")
    benchmark.group = "entropy threshold, 2048 bins"
    collector = calibrate.HistogramCollector(method="entropy", symmetric=False, num_bins=2048,
                                             num_quantized_bins=128, percentile=99.999,
                                             scenario="same")
    with contextlib.redirect_stdout(io.StringIO()):
        collector.collect({"x": [X]})
        benchmark.pedantic(collector.compute_collection_result, rounds=1)
