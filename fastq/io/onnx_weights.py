"""ONNX models with quantized weights: QDQ initializers that ONNX Runtime runs.

Each float weight initializer feeding MatMul (input B), Gemm (input B) or Conv (input
W) becomes integer codes and a float32 scale, with a ``DequantizeLinear`` node whose
output takes the weight's name, so its consumers are untouched (the QDQ form that
ONNX Runtime's graph optimizer fuses into integer kernels where it has them).

- ``dynamic_range``: int8, symmetric, narrow range (codes in [-127, 127]), one scale
  per output channel: axis 1 of a MatMul/Gemm ``(K, N)`` weight, axis 0 of a
  ``transB=1`` Gemm ``(N, K)`` weight and of a Conv ``(M, C/g, kh, kw)`` weight
  (per-axis DequantizeLinear, opset 13).
- ``int4_weight_only``: int4 symmetric in blocks of 128 along the reduction axis
  (K), with DequantizeLinear's ``block_size`` (opset 21); a Conv weight gets int4 per
  output channel.

The codes are what ``fq.quantize`` gives (int4 packed two per byte, first element in
the low nibble: ONNX's own INT4 layout, stored as it is).  A weight that is also a
graph input, shared with another kind of consumer, smaller than ``min_elements`` or
filtered out by ``include``/``exclude`` (``fnmatch`` patterns) stays float, and so do
float16/float64 weights (DequantizeLinear returns its float32 scale's type).
"""
import fnmatch

import numpy as np

from ..core.granularity import PerChannel, PerGroup
from ..ops import metrics, quantize
from .output import atomic_output

BLOCK = 128
RECIPES = {"dynamic_range": 13, "int4_weight_only": 21}  # recipe -> opset it needs


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX models need the onnx package: pip install "fastq[onnx]"') \
            from None
    return onnx


def _weight_spec(node, index, ndim):
    """``(op, channel axis, reduction axis)`` of input ``index`` of ``node``, or None."""
    if node.op_type == "MatMul" and index == 1 and ndim >= 2:
        return ("MatMul", ndim - 1, ndim - 2)
    if node.op_type == "Gemm" and index == 1 and ndim == 2:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return ("Gemm", 0, 1) if trans_b else ("Gemm", 1, 0)
    if node.op_type == "Conv" and index == 1 and ndim >= 3:
        return ("Conv", 0, None)
    return None


def quantize_onnx(model, recipe="dynamic_range", *, include=None, exclude=None,
                  min_elements=1024):
    """Quantize an ``onnx.ModelProto``'s weights in place; returns report rows.

    Raises
    ------
    ValueError
        An unknown recipe, or an opset below what the recipe's DequantizeLinear needs.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r} is not available for ONNX models: "
                         f"use one of {tuple(RECIPES)}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < RECIPES[recipe]:
        raise ValueError(f"recipe {recipe!r} needs an ONNX opset >= {RECIPES[recipe]} "
                         f"(DequantizeLinear), the model has {opset}: convert it first "
                         "(onnx.version_converter)")
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    specs = {}  # initializer -> set of specs of its consumers (None: not a weight input)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in initializers:
                spec = _weight_spec(node, index, len(initializers[name].dims))
                specs.setdefault(name, set()).add(spec)
    rows, new_nodes = [], []
    for name, tensor in initializers.items():
        w = numpy_helper.to_array(tensor)
        spec = specs.get(name, {None})
        chosen = (len(spec) == 1 and None not in spec and name not in graph_inputs
                  and w.dtype == np.float32 and w.size >= min_elements
                  and (not include or any(fnmatch.fnmatch(name, p) for p in include))
                  and not any(fnmatch.fnmatch(name, p) for p in exclude or ()))
        if not chosen:
            rows.append(_row(name, "kept", w, w.nbytes, None))
            continue
        op, channel_axis, reduction_axis = next(iter(spec))
        x = w.astype(np.float32)
        if recipe == "int4_weight_only" and reduction_axis is not None:
            qt = quantize(x, "int4", scheme="symmetric",
                          granularity=PerGroup(BLOCK, axis=reduction_axis))
            attrs = {"axis": reduction_axis, "block_size": BLOCK}
        else:
            dtype = "int4" if recipe == "int4_weight_only" else "int8"
            qt = quantize(x, dtype, scheme="symmetric", granularity=PerChannel(channel_axis),
                          narrow_range=dtype == "int8")
            attrs = {"axis": channel_axis}
        codes = helper.make_tensor(f"{name}_quantized", onnx.TensorProto.INT4 if qt.dtype == "int4"
                                   else onnx.TensorProto.INT8, list(w.shape),
                                   qt.data.tobytes(), raw=True)
        scale = numpy_helper.from_array(np.asarray(qt.scale, np.float32), f"{name}_scale")
        graph.initializer.remove(tensor)
        graph.initializer.extend([codes, scale])
        new_nodes.append(helper.make_node("DequantizeLinear", [codes.name, scale.name],
                                          [name], name=f"{name}_DequantizeLinear", **attrs))
        sqnr = float(metrics(x, qt.dequantize()).sqnr_db)
        rows.append(_row(name, f"{recipe} ({op})", w, qt.nbytes, sqnr))
    nodes = new_nodes + list(graph.node)  # DequantizeLinear reads initializers only
    del graph.node[:]
    graph.node.extend(nodes)
    return rows


def _row(name, scheme, w, after, sqnr):
    return {"name": name, "scheme": scheme, "shape": tuple(w.shape),
            "bytes_before": int(w.nbytes), "bytes_after": int(after),
            "bits_per_element": 8.0 * after / w.size if w.size else 0.0, "sqnr_db": sqnr}


def quantize_onnx_file(source, target, recipe="dynamic_range", **options):
    """Read ``source`` (.onnx), quantize its weights (:func:`quantize_onnx`), write
    ``target`` (.onnx) through a temporary file; returns the report rows."""
    import os
    onnx = _onnx()
    if not os.path.isfile(source):
        raise ValueError(f"input {os.fspath(source)!r}: no such file")
    if not os.fspath(target).lower().endswith(".onnx"):
        raise ValueError(f"output {os.fspath(target)!r}: an ONNX model quantizes into a .onnx file")
    try:
        model = onnx.load(source)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{source}: not a readable ONNX model ({exc})") from None
    rows = quantize_onnx(model, recipe, **options)
    with atomic_output(target) as tmp:
        onnx.save(model, tmp)
    return rows
