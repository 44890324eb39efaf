"""Every granularity on every shape: ``PerBlock`` blocks that alternate with whole
dimensions past the canonical 3-D view (``fastq.ops.linear.lead_dims``) quantize,
fake-quantize and dequantize as the NumPy reference does, bit for bit."""
import numpy as np
import pytest

import fastq as fq
import reference_quant as ref

CASES = [((4, 3, 6, 5), (2, 1, 2, 1)), ((5, 2, 3, 4, 3), (2, 1, 2, 1, 2)),
         ((3, 4, 5, 2), (1, 3, 1, 2)), ((2, 3, 2, 3, 2, 3), (1, 2, 1, 2, 1, 2))]


@pytest.mark.parametrize("shape, block", CASES, ids=str)
@pytest.mark.parametrize("dtype, scheme", [("int8", "asymmetric"), ("uint4", "symmetric"),
                                           ("int2", "asymmetric"), ("int16", "symmetric")])
def test_blocks_past_three_dimensions(shape, block, dtype, scheme, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    granularity = ("block", block)
    qt = fq.quantize(x, dtype, scheme=scheme, granularity=fq.PerBlock(block))
    ref.assert_matches(qt, x, dtype, granularity, scheme)
    want = ref.fake_quantize(x, dtype, granularity, scheme)
    got = fq.fake_quantize(x, dtype, scheme=scheme, granularity=fq.PerBlock(block))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    static = fq.quantize(x, dtype, granularity=fq.PerBlock(block), scale=qt.scale,
                         zero_point=qt.zero_point)
    assert np.array_equal(static.data, qt.data)


def test_blocks_past_three_dimensions_other_layouts(rng):
    x = rng.standard_normal((6, 4, 6, 4)).astype(np.float32)
    g = fq.PerBlock((2, 1, 2, 1))
    want = fq.quantize(x, "int8", granularity=g)
    for other in (x.astype(">f4"), x[:, :, ::-1][:, :, ::-1], x.astype(np.float16)):
        got = fq.quantize(other, "int8", granularity=g)
        if other.dtype == np.float16:
            want16 = fq.quantize(x.astype(np.float16).astype(np.float32), "int8", granularity=g)
            assert np.array_equal(got.data, want16.data)
        else:
            assert np.array_equal(got.data, want.data)
            assert np.array_equal(got.scale.view(np.uint32), want.scale.view(np.uint32))
