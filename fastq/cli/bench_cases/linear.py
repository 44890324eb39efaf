"""Benchmark cases of linear quantization: per tensor (dynamic and static), per channel,
int4 groups, dequantize, fake quantize, float16 input, packing, metrics, and a model's
worth of small tensors, beside torch, ONNX Runtime and NumPy."""
import numpy as np

from . import ort_session


def cases(x, peers):
    from ... import ops as fq
    m = x.reshape(-1, 4096) if x.size % 4096 == 0 else x.reshape(1, -1)
    return _quant_cases(fq, m, peers) + [_many_tensors_case(fq, peers.get("torch"))]


def _many_tensors_case(fq, torch, count=100, shape=(384, 384)):
    """A model's worth of small weights: ``count`` tensors quantized one call each
    (symmetric int8 per output channel), where the Python around each call counts."""
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal(shape, dtype=np.float32) for _ in range(count)]
    g = fq.PerChannel(0)
    row = {"fastq": lambda: [fq.quantize(w, "int8", scheme="symmetric", granularity=g)
                             for w in ws],
           "numpy": lambda: [np.clip(np.rint(w / (np.abs(w).max(axis=1, keepdims=True) / 127)),
                                     -128, 127).astype(np.int8) for w in ws]}
    if torch is not None:
        wts = [torch.from_numpy(w) for w in ws]
        zeros = torch.zeros(shape[0], dtype=torch.long)
        row["torch"] = lambda: [torch.quantize_per_channel(w, w.abs().amax(dim=1) / 127, zeros,
                                                           0, torch.qint8) for w in wts]
    return (f"quantize {count} tensors {shape[0]}x{shape[1]} per-channel int8",
            5 * count * shape[0] * shape[1], row)


def _quant_cases(fq, m, peers):
    n = m.size
    torch, ort = peers.get("torch"), peers.get("ort")
    out = []
    row = {"fastq": lambda: fq.quantize(m, "uint8")}
    if torch is not None:
        mt = torch.from_numpy(m)

        def torch_dynamic():
            lo, hi = torch.aminmax(mt)
            scale = float((max(hi, 0) - min(lo, 0)) / 255) or 1.0
            return torch.quantize_per_tensor(mt, scale, 0, torch.quint8)
        row["torch"] = torch_dynamic
    if ort is not None:
        _, helper, T = ort
        sess = ort_session(ort, [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
                            [helper.make_tensor_value_info("x", T.FLOAT, [None, None])],
                            [helper.make_tensor_value_info("y", T.UINT8, [None, None]),
                             helper.make_tensor_value_info("s", T.FLOAT, []),
                             helper.make_tensor_value_info("z", T.UINT8, [])])
        row["onnxruntime"] = lambda: sess.run(None, {"x": m})
    out.append(("quantize per-tensor dynamic uint8", 5 * n, row))
    out.append(_static_case(fq, m, torch, ort))
    for axis in (0, 1):
        out.append(_per_channel_case(fq, m, torch, axis))
    if m.shape[1] % 128 == 0 and m.shape[0] % 128 == 0:
        for axis in (1, 0):
            out.append(_int4_group_case(fq, m, torch, axis))
    out.append(_dequantize_case(fq, m, torch, ort))
    out.append(_fake_quantize_case(fq, m, torch))
    out.append(_float16_input_case(fq, m, torch))
    out.extend(_pack_cases(fq, m))
    out.append(_metrics_case(fq, m, torch))
    return out


def _float16_input_case(fq, m, torch):
    """float16 weights to int8: fastq converts piece by piece inside the quantize pass."""
    h = m.astype(np.float16)
    row = {"fastq": lambda: fq.quantize(h, "int8", scheme="symmetric",
                                        granularity=fq.PerChannel(0)),
           "numpy": lambda: np.clip(np.rint(h.astype(np.float32) / (
               np.abs(h).max(axis=1, keepdims=True).astype(np.float32) / 127)), -128, 127
           ).astype(np.int8)}
    if torch is not None:
        ht = torch.from_numpy(h)
        zeros = torch.zeros(m.shape[0], dtype=torch.long)

        def torch_per_channel():
            x = ht.float()
            return torch.quantize_per_channel(x, x.abs().amax(dim=1) / 127, zeros, 0,
                                              torch.qint8)
        row["torch"] = torch_per_channel
    return "quantize float16 input per-channel symmetric int8", 3 * m.size, row


def _pack_cases(fq, m):
    """int4 codes to nibbles and back (NumPy's shifts and masks as the peer)."""
    codes = np.clip(np.rint(m * 2), -8, 7).astype(np.int8).reshape(-1)
    packed = fq.pack(codes, bits=4)

    def numpy_unpack():
        out = np.empty(codes.size, np.int8)
        out[0::2] = (packed.view(np.int8) << 4) >> 4
        out[1::2] = packed.view(np.int8) >> 4
        return out
    return [("pack int4", 1.5 * codes.size, {
                "fastq": lambda: fq.pack(codes, bits=4),
                "numpy": lambda: ((codes[0::2] & 15) | (codes[1::2] << 4)).astype(np.uint8)}),
            ("unpack int4", 1.5 * codes.size, {
                "fastq": lambda: fq.unpack(packed, bits=4, count=codes.size),
                "numpy": numpy_unpack})]


def _metrics_case(fq, m, torch):
    """Error statistics of a dequantized tensor, float64 accumulation."""
    x_hat = fq.fake_quantize(m, "int8")

    def numpy_metrics():
        e = (m.astype(np.float64) - x_hat).reshape(-1)
        return np.abs(e).mean(), np.dot(e, e) / e.size, np.abs(e).max()
    row = {"fastq": lambda: fq.metrics(m, x_hat), "numpy": numpy_metrics}
    if torch is not None:
        a, b = torch.from_numpy(m), torch.from_numpy(x_hat)

        def torch_metrics():
            e = a.double() - b.double()
            return e.abs().mean(), (e * e).mean(), e.abs().max()
        row["torch"] = torch_metrics
    return "metrics (mae, mse, max, sqnr, cosine)", 8 * m.size, row


def _static_case(fq, m, torch, ort):
    """QuantizeLinear with a given scale and zero point (int8, per-tensor)."""
    scale, zero = np.float32(0.02), np.int8(3)
    row = {"fastq": lambda: fq.quantize(m, "int8", scale=scale, zero_point=zero)}
    if torch is not None:
        mt = torch.from_numpy(m)
        row["torch"] = lambda: torch.quantize_per_tensor(mt, 0.02, 3, torch.qint8)
    if ort is not None:
        _, helper, T = ort
        sess = ort_session(ort, [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
                            [helper.make_tensor_value_info("x", T.FLOAT, [None, None]),
                             helper.make_tensor_value_info("s", T.FLOAT, []),
                             helper.make_tensor_value_info("z", T.INT8, [])],
                            [helper.make_tensor_value_info("y", T.INT8, [None, None])])
        feed = {"x": m, "s": np.array(scale), "z": np.array(zero)}
        row["onnxruntime"] = lambda: sess.run(None, feed)
    return "quantize per-tensor static int8", 5 * m.size, row


def _per_channel_case(fq, m, torch, axis):
    """Symmetric int8 with one scale per index along ``axis`` (ranges computed too)."""
    row = {"fastq": lambda: fq.quantize(m, "int8", scheme="symmetric",
                                        granularity=fq.PerChannel(axis)),
           "numpy": lambda: np.clip(np.rint(
               m / (np.abs(m).max(axis=1 - axis, keepdims=True) / 127)), -128, 127
           ).astype(np.int8)}
    if torch is not None:
        mt = torch.from_numpy(m)
        zeros = torch.zeros(m.shape[axis], dtype=torch.long)

        def torch_per_channel():
            amax = mt.abs().amax(dim=1 - axis)
            return torch.quantize_per_channel(mt, amax / 127, zeros, axis, torch.qint8)
        row["torch"] = torch_per_channel
    return f"quantize per-channel symmetric int8 axis {axis}", 5 * m.size, row


def _int4_group_case(fq, m, torch, axis):
    """Symmetric int4, groups of 128 along ``axis``, codes packed two to a byte."""
    def numpy_int4():
        g = np.moveaxis(m, axis, -1).reshape(-1, 128)
        s = np.abs(g).max(-1, keepdims=True) / 7
        q = np.clip(np.rint(g / s), -8, 7).astype(np.int8).reshape(-1)
        return ((q[0::2] & 15) | (q[1::2] << 4)).astype(np.uint8)
    row = {"fastq": lambda: fq.quantize(m, "int4", scheme="symmetric",
                                        granularity=fq.PerGroup(128, axis=axis)),
           "numpy": numpy_int4}
    if torch is not None:
        mt = torch.from_numpy(m)

        def torch_int4():
            g = mt.movedim(axis, -1).reshape(-1, 128)
            s = g.abs().amax(dim=1, keepdim=True) / 7
            q = torch.clamp(torch.round(g / s), -8, 7).to(torch.int8).reshape(-1)
            return (q[0::2] & 15) | (q[1::2] << 4)
        row["torch"] = torch_int4
    return (f"quantize int4 group-128 symmetric (packed) axis {axis}", 4.5 * m.size, row)


def _fake_quantize_case(fq, m, torch):
    """Quantize and dequantize fused, symmetric int8 per channel (axis 0): float32 out."""
    def numpy_fake():
        s = np.abs(m).max(axis=1, keepdims=True) / np.float32(127)
        return (np.clip(np.rint(m / s), -128, 127) * s).astype(np.float32)
    row = {"fastq": lambda: fq.fake_quantize(m, "int8", scheme="symmetric",
                                             granularity=fq.PerChannel(0)),
           "numpy": numpy_fake}
    if torch is not None:
        mt = torch.from_numpy(m)
        zeros = torch.zeros(m.shape[0], dtype=torch.int32)

        def torch_fake():
            scale = mt.abs().amax(dim=1) / 127
            return torch.fake_quantize_per_channel_affine(mt, scale, zeros, 0, -128, 127)
        row["torch"] = torch_fake
    return "fake-quantize per-channel symmetric int8", 8 * m.size, row


def _dequantize_case(fq, m, torch, ort):
    qt = fq.quantize(m, "int8", scale=np.float32(0.02))
    row = {"fastq": lambda: fq.dequantize(qt),
           "numpy": lambda: qt.data.astype(np.float32) * np.float32(0.02)}
    if torch is not None:
        tq = torch.quantize_per_tensor(torch.from_numpy(m), 0.02, 0, torch.qint8)
        row["torch"] = tq.dequantize
    if ort is not None:
        _, helper, T = ort
        sess = ort_session(ort, [helper.make_node("DequantizeLinear", ["q", "s"], ["y"])],
                            [helper.make_tensor_value_info("q", T.INT8, [None, None]),
                             helper.make_tensor_value_info("s", T.FLOAT, [])],
                            [helper.make_tensor_value_info("y", T.FLOAT, [None, None])])
        feed = {"q": qt.data, "s": np.array(np.float32(0.02))}
        row["onnxruntime"] = lambda: sess.run(None, feed)
    return "dequantize per-tensor int8", 5 * m.size, row
