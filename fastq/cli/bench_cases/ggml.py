"""GGML block formats: fastq beside ``gguf.quants`` (the gguf package's NumPy quantizer
and dequantizer) where installed.  The K-quants' search for scales is about a thousand
times the work of a legacy format per element, so they run on a 1/64 slice of ``x``
(``gguf.quants`` cannot quantize K-quants: their peer rows are dequantize only)."""
import warnings

import numpy as np

LEGACY_ROWS = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
KQUANT_ROWS = ("q4_K", "q6_K", "q2_K", "q3_K")
BYTES = {"q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32, "q5_0": 22 / 32,
         "q5_1": 24 / 32, "q4_K": 144 / 256, "q6_K": 210 / 256,
         "q2_K": 84 / 256, "q3_K": 110 / 256}


def _gguf():
    try:
        import gguf.quants
        return gguf
    except ImportError:
        return None


def _quiet(fn):
    def run():
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn()
    return run


def cases(x, peers):
    from ... import ops as fq
    gguf = _gguf()
    m = x.reshape(-1, 4096)
    small = x[:max(4096, x.size // 64)].reshape(-1, 4096)
    out = []
    for fmt in LEGACY_ROWS + KQUANT_ROWS:
        a = m if fmt in LEGACY_ROWS else small
        n = a.size
        qtype = getattr(gguf.GGMLQuantizationType, fmt.upper()) if gguf else None
        row = {"fastq": lambda a=a, fmt=fmt: fq.quantize(a, fmt)}
        if gguf is not None and fmt in LEGACY_ROWS:
            row["gguf"] = _quiet(lambda a=a, t=qtype: gguf.quants.quantize(a, t))
        out.append((f"{fmt} quantize", int(n * (4 + BYTES[fmt])), row))
        qt = fq.quantize(a, fmt)
        row = {"fastq": lambda qt=qt: fq.dequantize(qt)}
        if gguf is not None:
            row["gguf"] = lambda d=qt.data, t=qtype: gguf.quants.dequantize(d, t)
        out.append((f"{fmt} dequantize", int(n * (4 + BYTES[fmt])), row))
    return out
