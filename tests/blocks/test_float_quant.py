"""fq.quantize / fq.dequantize to float8_e4m3fn, float8_e5m2 and float4_e2m1fn:
ONNX QuantizeLinear / DequantizeLinear with float outputs (the reference evaluator and
the test cases shipped in onnx)."""
import warnings

import ml_dtypes
import numpy as np
import pytest

import fastq as fq

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

FLOATS = {"float8_e4m3fn": TensorProto.FLOAT8E4M3FN, "float8_e5m2": TensorProto.FLOAT8E5M2,
          "float4_e2m1fn": TensorProto.FLOAT4E2M1}


def bits(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 4: np.uint32}[a.dtype.itemsize])


def _all_node_cases():
    from onnx.backend.test.case import node
    with warnings.catch_warnings():  # (one collection per process: the module-level
        warnings.simplefilter("ignore")  # registry fills on the first import only)
        return list(node.collect_testcases(None))


ALL_CASES = _all_node_cases()


def onnx_cases(op):
    for case in ALL_CASES:
        n = case.model.graph.node[0]
        if n.op_type != op or not any(k in case.name for k in ("e4m3", "e5m2", "e2m1")):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        for inputs, outputs in case.data_sets:
            arrays = [numpy_helper.to_array(t) if isinstance(t, TensorProto) else np.asarray(t)
                      for t in list(inputs) + list(outputs)]
            yield case.name, attrs, arrays


def granularity_of(attrs, x, scale):
    if np.ndim(scale) == 0 or np.size(scale) == 1 and x.ndim <= 1:
        return "tensor"
    axis = attrs.get("axis", 1)
    if attrs.get("block_size"):
        return fq.PerGroup(attrs["block_size"], axis=axis)
    return fq.PerChannel(axis)


@pytest.mark.parametrize("case", list(onnx_cases("QuantizeLinear")), ids=lambda c: c[0])
def test_onnx_quantizelinear_cases(case):
    name, attrs, (x, scale, zero, y) = case
    dtype = {v: k for k, v in FLOATS.items()}[helper.np_dtype_to_tensor_dtype(zero.dtype)]
    qt = fq.quantize(x, dtype, scale=scale.reshape(-1) if scale.ndim else scale,
                     zero_point=zero.astype(np.float32),
                     granularity=granularity_of(attrs, x, scale))
    assert qt.codes().dtype == y.dtype
    # (the shipped float4 case writes +0 where -0.0 / 4 gives -0: compared as values,
    # as ONNX's backend tests compare; the bits elsewhere)
    assert np.array_equal(qt.codes().astype(np.float32), y.astype(np.float32))
    nonzero = y.astype(np.float32) != 0
    assert np.array_equal(bits(qt.codes())[nonzero], bits(y)[nonzero])
    assert qt.zero_point is None


@pytest.mark.parametrize("case", list(onnx_cases("DequantizeLinear")), ids=lambda c: c[0])
def test_onnx_dequantizelinear_cases(case):
    name, attrs, arrays = case
    x, scale, y = arrays[0], arrays[1], arrays[-1]
    dtype = {v: k for k, v in FLOATS.items()}[helper.np_dtype_to_tensor_dtype(x.dtype)]
    g = granularity_of(attrs, x, scale)
    scale = scale.astype(np.float32).reshape(-1) if scale.ndim else np.float32(scale)
    data = x
    if dtype == "float4_e2m1fn":  # (stored packed, low nibble first)
        data = fq.pack(x.view(np.uint8).reshape(-1), bits=4)
    qt = fq.QTensor(data, dtype, scale, None, x.shape, g)
    assert np.array_equal(bits(qt.codes()), bits(x))
    got = fq.dequantize(qt)
    if y.dtype == np.float32:
        assert np.array_equal(bits(got), bits(y))
    else:  # (a float16 output: the float32 product rounded once)
        assert np.array_equal(got.astype(y.dtype).view(np.uint16), y.view(np.uint16))


def reference_qdq(x, scale, dtype, axis=None, block_size=None):
    """onnx.reference QuantizeLinear then DequantizeLinear (opset 23)."""
    attrs = {} if axis is None else {"axis": axis}
    if block_size:
        attrs["block_size"] = block_size
    to = FLOATS[dtype]
    zero = numpy_helper.from_array(np.zeros(scale.shape, getattr(ml_dtypes, dtype)), "z")
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs)
    d = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
    graph = helper.make_graph(
        [q, d], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
                      helper.make_tensor_value_info("s", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("q", to, None),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    return ReferenceEvaluator(model).run(None, {"x": x, "s": scale})


@pytest.mark.parametrize("dtype", list(FLOATS))
def test_dynamic_quantization_matches_onnx_reference(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 40)) * np.exp2(rng.integers(-8, 8, (6, 1)))).astype(
        np.float32)
    x[0, :3] = [0.0, -0.0, 1e-30]
    x[1] = 0.0  # an all-zero row: scale 1
    fmax = {"float8_e4m3fn": 448, "float8_e5m2": 57344, "float4_e2m1fn": 6}[dtype]
    cases = [("tensor", None, None, np.abs(x).max()),
             (fq.PerChannel(0), 0, None, np.abs(x).max(axis=1)),
             (fq.PerGroup(16, axis=1), 1, 16,
              np.stack([np.abs(x[:, i:i + 16]).max(axis=1) for i in range(0, 40, 16)], 1))]
    for g, axis, block, amax in cases:
        qt = fq.quantize(x, dtype, granularity=g)
        want_scale = np.where(amax == 0, 1, np.float32(amax) / np.float32(fmax)).astype(
            np.float32)
        assert np.array_equal(qt.scale, want_scale.reshape(qt.scale.shape))
        q, y = reference_qdq(x, np.asarray(qt.scale, np.float32), dtype, axis, block)
        assert np.array_equal(bits(qt.codes()), bits(q))
        assert np.array_equal(bits(fq.dequantize(qt)), bits(y))


def test_given_scale_saturates_and_keeps_nan():
    x = np.array([1000.0, -1000.0, np.inf, -np.inf, np.nan, 1.0], np.float32)
    qt = fq.quantize(x, "float8_e4m3fn", scale=1.0)
    v = qt.codes().astype(np.float32)
    assert v[:4].tolist() == [448, -448, 448, -448] and np.isnan(v[4]) and v[5] == 1
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, "float8_e4m3fn")
    qt = fq.quantize(x, "float8_e5m2", nan_policy="ignore")
    assert qt.scale == np.float32(1000.0) / np.float32(57344)


def test_layout_bits_and_errors():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, ::-1]
    qt = fq.quantize(x, "float8_e5m2", granularity=fq.PerBlock((1, 2, 3)))
    assert qt.codes().shape == x.shape and qt.scale.shape == (2, 2, 2)
    assert qt.codes().dtype == ml_dtypes.float8_e5m2
    assert qt.bits_per_element == 8 * (24 + 4 * 8) / 24
    q4 = fq.quantize(np.ones(5, np.float32), "float4_e2m1fn")
    assert q4.data.nbytes == 3 and q4.codes().dtype == ml_dtypes.float4_e2m1fn
    assert np.array_equal(fq.dequantize(q4), np.ones(5, np.float32))
    assert fq.quantize(np.zeros((0, 4), np.float32), "float8_e4m3fn").codes().shape == (0, 4)
    with pytest.raises(ValueError, match="zero_point"):
        fq.quantize(np.ones(3, np.float32), "float8_e4m3fn", scale=1.0, zero_point=1)
    with pytest.raises(ValueError, match="scale"):
        fq.quantize(np.ones(3, np.float32), "float8_e4m3fn", scale=-1.0)
    with pytest.raises(TypeError, match="block_size"):
        fq.quantize(np.ones(3, np.float32), "float8_e4m3fn", block_size=3)
