"""Benchmark cases of the format families, one module each, found by name.

Each module here defines ``cases(x, peers) -> [(operation, nbytes, {impl: callable})]``
for a float32 vector ``x`` (its length a multiple of 4096) and the peers
:func:`fastq.cli.bench._peers` found (``peers.get("torch")`` etc.), and imports its own
optional peers (gguf, bitsandbytes) lazily, skipping them when missing.
"""
import importlib
import pkgutil


def family_cases(x, peers, names=None):
    """The cases of the family modules ``names`` (None: all), linear quantization first,
    then in module-name order."""
    out = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: (i.name != "linear", i.name)):
        if names is None or info.name in names:
            out.extend(importlib.import_module(f"{__name__}.{info.name}").cases(x, peers))
    return out


def ort_session(peer, nodes, inputs, outputs):
    ort, helper, _ = peer
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

