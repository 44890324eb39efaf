"""Linear quantization, bit for bit against ONNX's reference implementation and PyTorch.

Every comparison is ``np.array_equal`` on integer views.  The NumPy reference
(``reference_quant.py``) is itself checked against ONNX here, so that the property tests
that use it stand on the same ground.
"""
import functools

import ml_dtypes
import numpy as np
import pytest

import reference_quant as ref

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

# operation -> (references, how it is tested)
COMPARISONS = {
    "quantize (static scale/zero point)": (
        "ONNX QuantizeLinear (onnx.reference), torch.quantize_per_tensor/_per_channel",
        "all 8 dtypes; per-tensor, per-axis, blocked with a partial last block; exact .5 "
        "ties, saturation, -0.0; torch on tie-free data, tie differences counted"),
    "quantize (computed asymmetric/symmetric)": (
        "reference_quant.py (SPEC formulas in float32), ONNX DynamicQuantizeLinear (uint8)",
        "scale, zero point and codes bit for bit; codes re-checked through ONNX "
        "QuantizeLinear with fastq's own scale and zero point"),
    "dequantize / QTensor.from_codes": (
        "ONNX DequantizeLinear", "all 8 dtypes, per-tensor, per-axis, blocked"),
    "packing of 4- and 2-bit codes": (
        "onnx.numpy_helper.from_array(int4/uint4/int2/uint2).raw_data",
        "QTensor.data byte for byte, odd counts included"),
    "ONNX operator test cases": (
        "onnx/backend/test/case/node/{quantize,dequantize,dynamicquantize}linear.py",
        "every integer case; float8/float4 cases skipped (other SPEC section)"),
    "symmetric observer": (
        "TFLite/GGUF Q8_0 absmax/127", "PyTorch's absmax/127.5 documented, not matched"),
}

# QuantizeLinear gained int16/int4/blocked in opset 21 and int2/uint2 in 25 (onnx.defs).
OPSET = min(onnx.defs.onnx_opset_version(), 25)
if OPSET < 25:  # pragma: no cover - older onnx
    pytest.skip(f"onnx opset {OPSET} lacks 2-bit QuantizeLinear", allow_module_level=True)
ONNX_TYPE = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
             "int16": TensorProto.INT16, "uint16": TensorProto.UINT16,
             "int4": TensorProto.INT4, "uint4": TensorProto.UINT4,
             "int2": TensorProto.INT2, "uint2": TensorProto.UINT2}
DTYPE_OF_ONNX = {v: k for k, v in ONNX_TYPE.items()}


def onnx_np(dtype):
    return helper.tensor_dtype_to_np_dtype(ONNX_TYPE[dtype])


def u32(a):
    return np.array(a, dtype=np.float32, order="C").view(np.uint32)


def same_codes(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a.astype(np.int32), b.astype(np.int32))


# ----------------------------------------------------------------- ONNX models
def onnx_attrs(granularity, ndim):
    if granularity == "tensor":
        return {}
    if granularity[0] == "channel":
        return {"axis": granularity[1] % ndim}
    if granularity[0] == "group":
        return {"axis": granularity[2] % ndim, "block_size": granularity[1]}
    blocked = [ax for ax, b in enumerate(granularity[1]) if b != 1]  # ONNX blocks one axis
    assert len(blocked) == 1, granularity
    return {"axis": blocked[0], "block_size": granularity[1][blocked[0]]}


@functools.lru_cache(maxsize=None)
def _model(op, dtype, has_zero_point, attrs, xtype=TensorProto.FLOAT):
    attrs = dict(attrs)
    itype = xtype if op == "QuantizeLinear" else ONNX_TYPE[dtype]
    otype = ONNX_TYPE[dtype] if op == "QuantizeLinear" else TensorProto.FLOAT
    names = ["x", "scale"] + (["zero_point"] if has_zero_point else [])
    if op == "QuantizeLinear" and not has_zero_point:
        attrs["output_dtype"] = ONNX_TYPE[dtype]
    vi = helper.make_tensor_value_info
    inputs = [vi("x", itype, None), vi("scale", TensorProto.FLOAT, None)]
    if has_zero_point:
        inputs.append(vi("zero_point", ONNX_TYPE[dtype], None))
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [vi("y", otype, None)])
    return ReferenceEvaluator(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))


def _feeds(x, scale, zero_point, dtype):
    feeds = {"x": x, "scale": np.asarray(scale, np.float32)}
    if zero_point is not None:
        feeds["zero_point"] = np.asarray(zero_point).astype(onnx_np(dtype))
    return feeds


def onnx_quantize(x, scale, zero_point, dtype, granularity="tensor"):
    x = np.asarray(x)
    if x.dtype not in (np.float16, ml_dtypes.bfloat16):
        x = x.astype(np.float32)
    ev = _model("QuantizeLinear", dtype, zero_point is not None,
                tuple(sorted(onnx_attrs(granularity, x.ndim).items())),
                helper.np_dtype_to_tensor_dtype(x.dtype))
    y = ev.run(None, _feeds(x, scale, zero_point, dtype))[0]
    return y.astype(ref.CODE_DTYPE[dtype])


def onnx_dequantize(codes, scale, zero_point, dtype, granularity="tensor"):
    codes = np.asarray(codes).astype(onnx_np(dtype))
    ev = _model("DequantizeLinear", dtype, zero_point is not None,
                tuple(sorted(onnx_attrs(granularity, codes.ndim).items())))
    return ev.run(None, _feeds(codes, scale, zero_point, dtype))[0]


@functools.lru_cache(maxsize=None)
def _dynamic_model():
    vi = helper.make_tensor_value_info
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    graph = helper.make_graph([node], "g", [vi("x", TensorProto.FLOAT, None)],
                              [vi("y", TensorProto.UINT8, None), vi("s", TensorProto.FLOAT, None),
                               vi("z", TensorProto.UINT8, None)])
    return ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))


def onnx_dynamic_quantize(x):
    return _dynamic_model().run(None, {"x": np.asarray(x, np.float32)})


# ----------------------------------------------------------------- test data
CASES = [  # (shape, granularity) -- blocked ones include a partial last block
    ((37,), "tensor"),
    ((3, 5, 4), "tensor"),
    ((6, 7), ("channel", 0)),
    ((4, 3, 5), ("channel", -1)),
    ((4, 10), ("group", 3, -1)),
    ((10, 3), ("group", 4, 0)),
    ((2, 9, 3), ("group", 2, 1)),
    ((5, 7), ("block", (1, 3))),
    ((9, 2, 2), ("block", (4, 1, 1))),
]
CASE_IDS = [f"{s}-{g if isinstance(g, str) else '-'.join(map(str, g))}" for s, g in CASES]


def random_static_params(rng, dtype, granularity, shape):
    pshape = ref.param_shape(granularity, shape)
    qmin, qmax = ref.QRANGE[dtype]
    # a 5-bit mantissa keeps every (k + 0.5) * scale tie exactly representable in float32
    scale = 2.0 ** rng.integers(-6, 2, size=pshape) * rng.integers(16, 32, size=pshape) / 16
    zero_point = rng.integers(qmin, qmax + 1, size=pshape).astype(ref.CODE_DTYPE[dtype])
    return scale.astype(np.float32), zero_point


def data_with_ties(rng, shape, scale, granularity, dtype):
    """Random values, a third of them exact ``(k + 0.5) * scale`` ties, some saturating."""
    s = ref.expand(scale, granularity, shape)
    qmin, qmax = ref.QRANGE[dtype]
    span = qmax - qmin
    k = rng.integers(-span - 4, span + 4, size=shape)
    ties = ((k + 0.5) * s).astype(np.float32)
    assert np.array_equal((ties.astype(np.float64) / s) - 0.5, k)  # exactly representable
    x = (rng.standard_normal(shape) * span / 3 * s).astype(np.float32)
    pick = rng.integers(0, 3, size=shape)
    x = np.where(pick == 0, ties, x)
    x = np.where(rng.random(shape) < 0.05, np.float32(-0.0), x)
    x = np.where(rng.random(shape) < 0.05, (rng.choice([-1, 1], shape) * 4 * span * s), x)
    return x.astype(np.float32)


# ----------------------------------------------------------------- reference vs ONNX
@pytest.mark.parametrize("dtype", ref.DTYPES)
@pytest.mark.parametrize("shape,granularity", CASES, ids=CASE_IDS)
def test_reference_codes_and_dequantize_equal_onnx(dtype, shape, granularity):
    rng = np.random.default_rng(sum(map(ord, dtype)) + len(shape))
    scale, zero_point = random_static_params(rng, dtype, granularity, shape)
    x = data_with_ties(rng, shape, scale, granularity, dtype)
    codes = ref.quantize_codes(x, scale, zero_point, dtype, granularity)
    assert same_codes(codes, onnx_quantize(x, scale, zero_point, dtype, granularity))
    assert np.array_equal(u32(ref.dequantize(codes, scale, zero_point, granularity)),
                          u32(onnx_dequantize(codes, scale, zero_point, dtype, granularity)))


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2"])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_reference_packing_equals_onnx(dtype, count):
    qmin, qmax = ref.QRANGE[dtype]
    codes = np.random.default_rng(count).integers(qmin, qmax + 1, count)
    onnx_bytes = numpy_helper.from_array(codes.astype(onnx_np(dtype))).raw_data
    packed = ref.pack(codes.astype(ref.CODE_DTYPE[dtype]), ref.BITS[dtype])
    assert packed.tobytes() == onnx_bytes
    assert same_codes(ref.unpack(packed, ref.BITS[dtype], count, ref.is_signed(dtype)), codes)


def dynamic_inputs():
    rng = np.random.default_rng(7)
    yield "normal", rng.standard_normal(1000).astype(np.float32)
    yield "positive", rng.uniform(0.5, 3, (8, 9)).astype(np.float32)
    yield "negative", -rng.uniform(0.5, 3, 50).astype(np.float32)
    # range 255/16 -> scale 1/16 exactly, zero point 128: every (k + .5)/16 is a tie
    ties = ((rng.integers(-128, 127, 300) + 0.5) / 16).astype(np.float32)
    yield "ties", np.concatenate([[-8.0, 7.9375, -0.0], ties]).astype(np.float32)
    yield "huge", np.array([-3e38, 1.0], np.float32)
    yield "single", np.array([2.5], np.float32)


@pytest.mark.parametrize("name,x", list(dynamic_inputs()), ids=lambda v: v if isinstance(v, str) else "")
def test_reference_equals_dynamic_quantize_linear(name, x):
    codes, scale, zero_point = ref.quantize(x, "uint8")
    y, s, z = onnx_dynamic_quantize(x)
    assert u32(scale).item() == u32(s).item()
    assert int(zero_point) == int(z)
    assert np.array_equal(codes, y)


# ----------------------------------------------------------------- fastq vs ONNX
@pytest.mark.parametrize("dtype", ref.DTYPES)
@pytest.mark.parametrize("shape,granularity", CASES, ids=CASE_IDS)
def test_static_quantize_equals_onnx(fq, dtype, shape, granularity):
    rng = np.random.default_rng(sum(map(ord, dtype)) + 31 * len(shape))
    scale, zero_point = random_static_params(rng, dtype, granularity, shape)
    x = data_with_ties(rng, shape, scale, granularity, dtype)
    qt = fq.quantize(x, dtype, scale=scale, zero_point=zero_point,
                     granularity=ref.as_fastq(fq, granularity))
    expected = onnx_quantize(x, scale, zero_point, dtype, granularity)
    assert same_codes(qt.codes(), expected)
    assert np.array_equal(np.asarray(qt.data).ravel(), ref.stored_data(expected, dtype).ravel())
    assert np.array_equal(u32(fq.dequantize(qt)),
                          u32(onnx_dequantize(expected, scale, zero_point, dtype, granularity)))


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("dtype", ref.DTYPES)
@pytest.mark.parametrize("shape,granularity", CASES, ids=CASE_IDS)
def test_computed_quantize_equals_reference_and_onnx(fq, dtype, shape, granularity, scheme):
    x = (np.random.default_rng(len(shape) * 7 + ord(dtype[-1])).standard_normal(shape) * 2.5)
    x = x.astype(np.float32)
    qt = fq.quantize(x, dtype, scheme=scheme, granularity=ref.as_fastq(fq, granularity))
    codes, scale, zero_point = ref.quantize(x, dtype, granularity, scheme)
    assert np.array_equal(u32(qt.scale), u32(scale))
    if zero_point is None:
        assert qt.zero_point is None
    else:
        assert np.asarray(qt.zero_point).dtype == zero_point.dtype
        assert same_codes(qt.zero_point, zero_point)
    assert same_codes(qt.codes(), codes)
    # fastq's codes are what ONNX QuantizeLinear makes of fastq's own scale and zero point
    assert same_codes(qt.codes(), onnx_quantize(x, qt.scale, qt.zero_point, dtype, granularity))


@pytest.mark.parametrize("x_dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("dtype", ["int8", "uint4", "int16"])
def test_half_precision_input_equals_onnx(fq, x_dtype, dtype):
    """ONNX QuantizeLinear with float16/bfloat16 x and float32 scale divides in float32."""
    granularity = ("group", 3, -1)
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((5, 8)) * 4).astype(x_dtype)
    scale, zero_point = random_static_params(rng, dtype, granularity, x.shape)
    qt = fq.quantize(x, dtype, scale=scale, zero_point=zero_point,
                     granularity=ref.as_fastq(fq, granularity))
    assert same_codes(qt.codes(), onnx_quantize(x, scale, zero_point, dtype, granularity))
    qt = fq.quantize(x, dtype, granularity=ref.as_fastq(fq, granularity))
    assert same_codes(qt.codes(), onnx_quantize(x, qt.scale, qt.zero_point, dtype, granularity))


ALL_FLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
ALL_FINITE_FLOAT16 = ALL_FLOAT16[np.isfinite(ALL_FLOAT16)]


@pytest.mark.parametrize("dtype,scale,zero_point", [
    ("int8", 0.0078125, -3), ("uint8", 0.1, 128), ("int16", 3.0, 0), ("uint16", 0.5, 40000),
    ("int4", 1.5, None), ("uint4", 2.0 ** -10, 15), ("int2", 0.3, -1), ("uint2", 1.0, None)])
def test_every_float16_value_equals_onnx(fq, dtype, scale, zero_point):
    """Exhaustive over the finite float16 inputs (ONNX's reference casts +-inf through
    int32 undefined behaviour, so infinities are tested against the SPEC elsewhere)."""
    scale = np.float32(scale)
    zp = None if zero_point is None else np.array(zero_point).astype(ref.CODE_DTYPE[dtype])
    qt = fq.quantize(ALL_FINITE_FLOAT16, dtype, scale=scale, zero_point=zp)
    assert same_codes(qt.codes(), onnx_quantize(ALL_FINITE_FLOAT16, scale, zp, dtype))


@pytest.mark.parametrize("dtype", ref.DTYPES)
@pytest.mark.parametrize("shape,granularity", CASES, ids=CASE_IDS)
def test_from_codes_dequantize_equals_onnx(fq, dtype, shape, granularity):
    rng = np.random.default_rng(len(shape) + ord(dtype[0]))
    scale, zero_point = random_static_params(rng, dtype, granularity, shape)
    qmin, qmax = ref.QRANGE[dtype]
    codes = rng.integers(qmin, qmax + 1, shape).astype(ref.CODE_DTYPE[dtype])
    qt = fq.QTensor.from_codes(codes, dtype, scale, zero_point, ref.as_fastq(fq, granularity))
    assert np.array_equal(u32(fq.dequantize(qt)),
                          u32(onnx_dequantize(codes, scale, zero_point, dtype, granularity)))


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2"])
@pytest.mark.parametrize("count", [1, 3, 10, 101])
def test_packed_data_equals_onnx_raw_data(fq, dtype, count):
    x = np.random.default_rng(count).standard_normal(count).astype(np.float32)
    qt = fq.quantize(x, dtype)
    codes = np.asarray(qt.codes())
    assert np.asarray(qt.data).dtype == np.uint8
    assert np.asarray(qt.data).tobytes() == numpy_helper.from_array(
        codes.astype(onnx_np(dtype))).raw_data


@pytest.mark.parametrize("name,x", list(dynamic_inputs()), ids=lambda v: v if isinstance(v, str) else "")
def test_uint8_per_tensor_equals_dynamic_quantize_linear(fq, name, x):
    qt = fq.quantize(x, "uint8")
    y, s, z = onnx_dynamic_quantize(x)
    assert np.asarray(qt.scale).shape == ()
    assert u32(qt.scale).item() == u32(s).item()
    assert np.asarray(qt.zero_point).dtype == np.uint8 and int(qt.zero_point) == int(z)
    assert np.array_equal(np.asarray(qt.codes()), y)


def test_dynamic_quantize_linear_zero_range_differs_as_documented(fq):
    """onnx's reference gives scale 1/255 for an all-zero input; fastq (as ORT) gives 1."""
    x = np.zeros(5, np.float32)
    qt = fq.quantize(x, "uint8")
    assert float(qt.scale) == 1.0 and int(qt.zero_point) == 0
    assert np.array_equal(np.asarray(qt.codes()), onnx_dynamic_quantize(x)[0])
    assert float(onnx_dynamic_quantize(x)[1]) == np.float32(1) / np.float32(255)


# ----------------------------------------------------------------- ONNX's own operator cases
def shipped_cases():
    """The cases of onnx/backend/test/case/node/*quantizelinear.py, captured from ``expect``.

    (The installed onnx wheel ships the generators, not the ``data/node`` .pb files.)
    """
    from onnx.backend.test.case.node import dequantizelinear, dynamicquantizelinear, quantizelinear

    cases = []

    def capture(node, inputs, outputs, name, **kwargs):
        cases.append(pytest.param(node, inputs, outputs, id=name))

    for module, cls in [(quantizelinear, "QuantizeLinear"), (dequantizelinear, "DequantizeLinear"),
                        (dynamicquantizelinear, "DynamicQuantizeLinear")]:
        saved, module.expect = module.expect, capture
        try:
            for attr in sorted(vars(getattr(module, cls))):
                if attr.startswith("export"):
                    getattr(getattr(module, cls), attr)()
        finally:
            module.expect = saved
    return cases


def _as_numpy(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def map_shipped_case(node, inputs, outputs):
    """``(op, dtype, granularity, arrays, expected)`` or a skip reason."""
    inputs = [_as_numpy(v) for v in inputs]
    outputs = [_as_numpy(v) for v in outputs]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "DynamicQuantizeLinear":
        return node.op_type, "uint8", "tensor", inputs, outputs
    codes = outputs[0] if node.op_type == "QuantizeLinear" else inputs[0]
    onnx_type = helper.np_dtype_to_tensor_dtype(codes.dtype)
    if onnx_type not in DTYPE_OF_ONNX:
        pytest.skip(f"{codes.dtype} codes belong to the extended-formats section, not linear")
    if inputs[1].dtype != np.float32:
        pytest.skip(f"{inputs[1].dtype} scale: fastq scales are float32")
    scale = inputs[1]
    ndim = inputs[0].ndim
    axis = attrs.get("axis", 1)
    if scale.ndim == 0 or scale.size == 1:
        granularity = "tensor"
    elif attrs.get("block_size", 0):
        granularity = ("group", attrs["block_size"], axis)
    else:
        granularity = ("channel", axis % ndim)
    return node.op_type, DTYPE_OF_ONNX[onnx_type], granularity, inputs, outputs


SHIPPED = shipped_cases()


@pytest.mark.parametrize("node,inputs,outputs", SHIPPED)
def test_reference_passes_onnx_operator_cases(node, inputs, outputs):
    op, dtype, granularity, inputs, outputs = map_shipped_case(node, inputs, outputs)
    if op == "DynamicQuantizeLinear":
        codes, scale, zero_point = ref.quantize(inputs[0], dtype)
        assert u32(scale).item() == u32(outputs[1]).item() and int(zero_point) == int(outputs[2])
        assert same_codes(codes, outputs[0])
        return
    zero_point = inputs[2].astype(np.int32) if len(inputs) > 2 else None
    scale = inputs[1].reshape(()) if granularity == "tensor" else inputs[1]
    if zero_point is not None and granularity == "tensor":
        zero_point = zero_point.reshape(())
    if op == "QuantizeLinear":
        assert same_codes(ref.quantize_codes(inputs[0], scale, zero_point, dtype, granularity),
                          outputs[0])
    else:
        assert np.array_equal(u32(ref.dequantize(inputs[0], scale, zero_point, granularity)),
                              u32(outputs[0]))


@pytest.mark.parametrize("node,inputs,outputs", SHIPPED)
def test_fastq_passes_onnx_operator_cases(fq, node, inputs, outputs):
    op, dtype, granularity, inputs, outputs = map_shipped_case(node, inputs, outputs)
    if op == "DynamicQuantizeLinear":
        qt = fq.quantize(inputs[0], dtype)
        assert u32(qt.scale).item() == u32(outputs[1]).item()
        assert int(qt.zero_point) == int(outputs[2])
        assert same_codes(qt.codes(), outputs[0])
        return
    cdt = ref.CODE_DTYPE[dtype]
    scale = inputs[1].reshape(()) if granularity == "tensor" else inputs[1]
    zero_point = inputs[2].astype(cdt).reshape(scale.shape) if len(inputs) > 2 else None
    fq_granularity = ref.as_fastq(fq, granularity)
    if op == "QuantizeLinear":
        qt = fq.quantize(inputs[0], dtype, scale=scale, zero_point=zero_point,
                         granularity=fq_granularity)
        assert same_codes(qt.codes(), outputs[0])
    else:
        qt = fq.QTensor.from_codes(inputs[0].astype(cdt), dtype, scale, zero_point,
                                   fq_granularity)
        assert np.array_equal(u32(fq.dequantize(qt)), u32(outputs[0]))


# ----------------------------------------------------------------- PyTorch
def _torch():
    return pytest.importorskip("torch")


def _tie_free(x, s):
    """Elements whose ``x / s`` is at least 1e-3 away from a .5 tie (torch multiplies by 1/s)."""
    v = np.asarray(x, np.float64) / np.asarray(s, np.float64)
    return np.abs(np.abs(v - np.floor(v)) - 0.5) > 1e-3


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_torch_quantize_per_tensor_agrees_off_ties(fq, dtype):
    torch = _torch()
    x = (np.random.default_rng(3).standard_normal(4000) * 2).astype(np.float32)
    qt = fq.quantize(x, dtype)
    zp = 0 if qt.zero_point is None else int(qt.zero_point)
    tq = torch.quantize_per_tensor(torch.from_numpy(x), float(qt.scale), zp,
                                   torch.qint8 if dtype == "int8" else torch.quint8)
    got = tq.int_repr().numpy()
    keep = _tie_free(x, qt.scale)
    assert keep.mean() > 0.99
    assert np.array_equal(np.asarray(qt.codes())[keep], got[keep])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_torch_quantize_per_channel_agrees_off_ties(fq, dtype):
    torch = _torch()
    x = (np.random.default_rng(4).standard_normal((6, 300)) * 3).astype(np.float32)
    qt = fq.quantize(x, dtype, granularity=fq.PerChannel(0))
    tq = torch.quantize_per_channel(
        torch.from_numpy(x), torch.from_numpy(np.asarray(qt.scale, np.float64)),
        torch.from_numpy(np.asarray(qt.zero_point, np.int64)), 0,
        torch.qint8 if dtype == "int8" else torch.quint8)
    keep = _tie_free(x, np.asarray(qt.scale)[:, None])
    assert np.array_equal(np.asarray(qt.codes())[keep], tq.int_repr().numpy()[keep])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torch_differs_only_at_ties_documented():
    """At (near-)exact ``(k + .5) * s`` ties torch's ``x * float32(1/s)`` may round away.

    ONNX and fastq round the true quotient half to even.  For each scale this counts the
    codes torch gives differently on 255 ties, and checks that nothing else ever differs,
    by at most one code.  (A scale such as 0.02734375 differs on many exact ties; one
    such as 0.3, whose ties are inexact in float32, on near-ties.)
    """
    torch = _torch()
    k = np.arange(-128, 127)
    total = 0
    for s in map(np.float32, [0.75, 0.625, 0.02734375, 0.0107421875, 0.3]):
        x = ((k + 0.5) * s).astype(np.float32)
        ours = ref.quantize_codes(x, s, np.int8(0), "int8")
        theirs = torch.quantize_per_tensor(torch.from_numpy(x), float(s), 0,
                                           torch.qint8).int_repr().numpy()
        diff = ours.astype(np.int16) - theirs
        assert np.all(np.abs(diff) <= 1)
        assert np.all(~_tie_free(x, s)[diff != 0])  # only at ties
        total += np.count_nonzero(diff)
    assert total > 0  # the documented difference is real


def test_torch_symmetric_observer_divides_by_127_5_documented():
    torch = _torch()
    from torch.ao.quantization.observer import MinMaxObserver

    x = np.random.default_rng(5).standard_normal(1000).astype(np.float32)
    obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    obs(torch.from_numpy(x))
    torch_scale = float(obs.calculate_qparams()[0])
    amax = np.float32(np.max(np.abs(x)))
    _, scale, _ = ref.quantize(x, "int8", scheme="symmetric")
    assert float(scale) == float(amax / np.float32(127))
    assert torch_scale == pytest.approx(float(amax) / 127.5, rel=1e-6)
