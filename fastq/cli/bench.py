"""Side-by-side benchmarks: fastq and the peers installed, on the same data, same run.

Each case moves ``nbytes`` (read + written).  The roof is a plain parallel copy of the
same number of bytes (half read, half written) with as many threads as fastq uses; a
row's ``of copy`` is its GB/s over the copy's.  Peers are imported lazily and skipped
when missing.  ``run`` times each implementation back to back after a warm-up and a
pause (thread pools that busy-wait after a call, as ONNX Runtime's and OpenMP's do,
would otherwise steal the cores from the next library timed), in ``ROUNDS`` rounds that
each start with another library; the median of the ``repeat`` times counts (machines
are shared and noisy: the best time would flatter whoever got a quiet moment).  Each
library's first calls after the pause are slow on a shared virtual machine (its cores
go idle during the pause and take a while to come back up), so ``WARM`` calls come
before the timed ones.  ``sweep`` times the main rows from 4K to 16M elements with the
calls of all libraries interleaved one by one, as a process that uses them together
runs them.  Both print a line while the kernels of a case compile on first use.
"""
import sys
import time
import warnings

import numpy as np

from .bench_cases import family_cases


def _peers():
    peers = {}
    try:
        import ml_dtypes
        peers["ml_dtypes"] = ml_dtypes
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(2)
        peers["torch"] = torch
    except ImportError:
        pass
    try:
        import onnxruntime
        from onnx import TensorProto, helper
        peers["ort"] = (onnxruntime, helper, TensorProto)
    except ImportError:
        pass
    return peers


def _ort_session(peer, nodes, inputs, outputs):
    ort, helper, _ = peer
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _ort_cast(peer, src, dst):
    _, helper, T = peer
    tp = {"float32": T.FLOAT, "float16": T.FLOAT16, "float64": T.DOUBLE}
    sess = _ort_session(peer, [helper.make_node("Cast", ["x"], ["y"], to=tp[dst])],
                        [helper.make_tensor_value_info("x", tp[src], [None])],
                        [helper.make_tensor_value_info("y", tp[dst], [None])])
    return lambda x: sess.run(None, {"x": x})


def cases(n, families=True):
    """``(operation, nbytes, {impl: callable})`` for ``n`` float32 elements (``families``:
    with the cases of the format families, ``fastq.cli.bench_cases``)."""
    from .. import ops as fq
    peers = _peers()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    x64 = x.astype(np.float64)
    h = x.astype(np.float16)
    o16, o32 = np.empty(n, np.float16), np.empty(n, np.float32)
    out = []
    md = peers.get("ml_dtypes")
    torch = peers.get("torch")
    ort = peers.get("ort")
    if md is not None:
        b, obf = x.astype(md.bfloat16), np.empty(n, md.bfloat16)
    row = {"fastq": lambda: fq.cast(x, "float16", out=o16), "numpy": lambda: x.astype(np.float16)}
    if torch is not None:
        xt = torch.from_numpy(x)
        row["torch"] = lambda: xt.to(torch.float16)
    if ort is not None:
        f = _ort_cast(ort, "float32", "float16")
        row["onnxruntime"] = lambda: f(x)
    out.append(("cast fp32->fp16", 6 * n, row))
    out.append(("cast fp32->fp16 truncate", 6 * n,
                {"fastq": lambda: fq.cast(x, "float16", rounding="truncate", out=o16)}))
    if md is not None:
        row = {"fastq": lambda: fq.cast(x, "bfloat16", out=obf),
               "ml_dtypes": lambda: x.astype(md.bfloat16)}
        if torch is not None:
            row["torch"] = lambda: xt.to(torch.bfloat16)
        out.append(("cast fp32->bf16", 6 * n, row))
        out.append(("cast fp32->bf16 stochastic", 6 * n, {
            "fastq": lambda: fq.cast(x, "bfloat16", rounding="stochastic", seed=1, out=obf)}))
        row = {"fastq": lambda: fq.cast(b, "float32", out=o32),
               "ml_dtypes": lambda: b.astype(np.float32)}
        if torch is not None:
            bt = torch.from_numpy(b.view(np.int16)).view(torch.bfloat16)
            row["torch"] = lambda: bt.float()
        out.append(("cast bf16->fp32", 6 * n, row))
    row = {"fastq": lambda: fq.cast(x64, "float16", out=o16), "numpy": lambda: x64.astype(np.float16)}
    out.append(("cast fp64->fp16", 10 * n, row))
    row = {"fastq": lambda: fq.cast(h, "float32", out=o32), "numpy": lambda: h.astype(np.float32)}
    if torch is not None:
        ht = torch.from_numpy(h)
        row["torch"] = lambda: ht.float()
    if ort is not None:
        g = _ort_cast(ort, "float16", "float32")
        row["onnxruntime"] = lambda: g(h)
    out.append(("cast fp16->fp32", 6 * n, row))
    out.extend(_quant_cases(fq, x.reshape(-1, 4096) if n % 4096 == 0 else x.reshape(1, -1),
                            peers))
    out.append(_many_tensors_case(fq, torch))
    if families:
        out.extend(family_cases(x, peers))
    return out


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
        sess = _ort_session(ort, [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
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
        sess = _ort_session(ort, [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
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
        sess = _ort_session(ort, [helper.make_node("DequantizeLinear", ["q", "s"], ["y"])],
                            [helper.make_tensor_value_info("q", T.INT8, [None, None]),
                             helper.make_tensor_value_info("s", T.FLOAT, [])],
                            [helper.make_tensor_value_info("y", T.FLOAT, [None, None])])
        feed = {"q": qt.data, "s": np.array(np.float32(0.02))}
        row["onnxruntime"] = lambda: sess.run(None, feed)
    return "dequantize per-tensor int8", 5 * m.size, row


def _copy_roof(nbytes):
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def copy(src, dst):
        step = (src.size + 63) // 64
        for c in prange(64):
            dst[c * step:(c + 1) * step] = src[c * step:(c + 1) * step]
    src = np.ones(int(nbytes // 2), np.uint8)
    dst = np.empty_like(src)
    return lambda: copy(src, dst)


ROUNDS = 3
WARM = 2
# The sizes of the sweep, and its rows (the operations users call on tensors of every size)
SWEEP = (1 << 12, 1 << 16, 1 << 18, 1 << 20, 1 << 24)
SWEEP_ROWS = ("cast fp32->fp16", "cast fp32->bf16", "quantize per-tensor dynamic uint8",
              "quantize per-tensor static int8", "quantize per-channel symmetric int8 axis 0",
              "dequantize per-tensor int8", "quantize 100 tensors 384x384 per-channel int8")


def _first_call(op, fn, stream):
    """Run ``fn`` once, saying so on ``stream`` (default stderr) when it takes long
    (kernels compiling)."""
    stream = sys.stderr if stream is None else stream
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    if elapsed > 0.5:
        print(f"fastq bench: {op}: first call (compiling) {elapsed:.1f} s", file=stream,
              flush=True)


def run(size=1 << 24, repeat=15, only=None, stream=None):
    """Time every case; returns rows ``(operation, impl, seconds, nbytes, copy_seconds)``
    with the median time of ``repeat`` calls."""
    rows = []
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    for op, nbytes, impls in cases(size):
        if only and only not in op:
            continue
        _first_call(op, impls["fastq"], stream)
        roof = _copy_roof(nbytes)
        impls = dict(impls, copy=roof)
        times = {name: [] for name in impls}
        names = list(impls)
        for rnd in range(ROUNDS):  # each round in another order: no library always first
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                time.sleep(0.05)  # let the previous library's thread pool stop spinning
                for _ in range(WARM):
                    impls[name]()
                for _ in range(max(1, -(-repeat // ROUNDS))):
                    t0 = time.perf_counter()
                    impls[name]()
                    times[name].append(time.perf_counter() - t0)
        median = {name: float(np.median(t)) for name, t in times.items()}
        for name in impls:
            if name != "copy":
                rows.append((op, name, median[name], nbytes, median["copy"]))
    return rows


def sweep(sizes=SWEEP, repeat=25, only=None, stream=None):
    """The main rows at each size, the calls of all libraries interleaved one by one
    (fastq, a peer, another peer, fastq again, ...): rows ``(operation, size, impl,
    seconds)``, the median time per call."""
    rows = []
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    for size in sizes:
        for op, _, impls in cases(size, families=False):
            if op not in SWEEP_ROWS or (only and only not in op):
                continue
            many = op.startswith("quantize 100 tensors")  # (its size is its own: once)
            if many and size != sizes[0]:
                continue
            _first_call(op, impls["fastq"], stream)
            for fn in impls.values():
                for _ in range(WARM):
                    fn()
            times = {name: [] for name in impls}
            calls = max(3, min(repeat * 20, int(repeat * (1 << 22) / size)))  # (small: more)
            calls = repeat if many else calls
            for _ in range(calls):
                for name, fn in impls.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            rows += [(op, 100 * 384 * 384 if many else size, name, float(np.median(t)))
                     for name, t in times.items()]
    return rows


def format_sweep(rows, markdown=False):
    """Per operation and size: each library's median time, and fastq's over the fastest
    peer's (below 1: fastq is faster)."""
    head = ["operation", "elements", "fastq us", "fastest peer", "peer us", "fastq / peer"]
    body = []
    for op, size in dict.fromkeys((r[0], r[1]) for r in rows):
        times = {name: t for o, s, name, t in rows if (o, s) == (op, size)}
        peers = {name: t for name, t in times.items() if name != "fastq"}
        peer = min(peers, key=peers.get) if peers else ""
        body.append([op, str(size), f"{times['fastq'] * 1e6:.1f}", peer,
                     f"{peers[peer] * 1e6:.1f}" if peer else "",
                     f"{times['fastq'] / peers[peer]:.2f}" if peer else ""])
    return _table(head, body, markdown)


def format_table(rows, markdown=False):
    """ms, GB/s, speed-up over the fastest peer (fastq rows), fraction of copy."""
    head = ["operation", "impl", "ms", "GB/s", "x fastest peer", "of copy"]
    fastest = {}
    for op, name, t, _, _ in rows:
        if name != "fastq":
            fastest[op] = min(fastest.get(op, np.inf), t)
    body = []
    for op, name, t, nbytes, tc in rows:
        ratio = f"{fastest[op] / t:.2f}x" if name == "fastq" and op in fastest else ""
        body.append([op, name, f"{t * 1e3:.2f}", f"{nbytes / t / 1e9:.1f}", ratio,
                     f"{tc / t:.2f}"])
    return _table(head, body, markdown)


def _table(head, body, markdown):
    lines = []
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        lines += ["| " + " | ".join(r) + " |" for r in body]
    else:
        widths = [max(len(str(r[i])) for r in body + [head]) for i in range(len(head))]
        for r in [head] + body:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)
