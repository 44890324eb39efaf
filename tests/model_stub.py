"""A stand-in for ``fq.quantize_model`` with its interface (used where
``fastq.calibration`` is absent), so the file and command-line parts test alone."""
import fnmatch
from types import SimpleNamespace

import numpy as np

import fastq as fq


def quantize_model(weights, recipe="dynamic_range", representative_dataset=None, *,
                   include=None, exclude=None, overrides=None, min_elements=1024):
    recipes = {"dynamic_range": dict(dtype="int8", scheme="symmetric", narrow_range=True),
               "int4_weight_only": dict(dtype="int4", scheme="symmetric",
                                        granularity=fq.PerGroup(128))}
    if recipe not in recipes and recipe != "float16":
        raise ValueError(f"unknown recipe {recipe!r}")
    tensors, rows = {}, []
    for name, x in weights.items():
        x = np.asarray(x)
        chosen = x.size >= min_elements and x.ndim >= 2 and \
            (not include or any(fnmatch.fnmatch(name, p) for p in include)) and \
            not any(fnmatch.fnmatch(name, p) for p in exclude or ())
        if not chosen:
            out, scheme, after = x, "kept", x.nbytes
        elif recipe == "float16":
            out, scheme = fq.cast(x, "float16"), "float16"
            after = out.nbytes
        else:
            options = dict(recipes[recipe])
            options.setdefault("granularity", fq.PerChannel(0))
            out = fq.quantize(x, **options)
            scheme, after = recipe, out.nbytes
        x_hat = out.dequantize() if isinstance(out, fq.QTensor) else np.asarray(out, np.float32)
        sqnr = float(fq.metrics(x.astype(np.float32), x_hat).sqnr_db) if chosen else None
        tensors[name] = out
        rows.append({"name": name, "scheme": scheme, "shape": x.shape, "bytes_before": x.nbytes,
                     "bytes_after": after, "bits_per_element": 8 * after / max(x.size, 1),
                     "sqnr_db": sqnr})
    return SimpleNamespace(tensors=tensors, report=lambda: SimpleNamespace(rows=rows))
