"""``fq.quantize_model``: post-training quantization of a mapping of named tensors by
recipe (TensorFlow Lite's options, plus the LLM ones), with a size and error report."""
import fnmatch
from collections import defaultdict

import numpy as np

from ..core.granularity import PerChannel, PerGroup
from ..ops import QTensor, cast, metrics, quantize, to_host
from ..ops.blocks import FORMATS, is_block_format
from .batching import quantize_batched, row_wise
from .calibrator import Calibrator
from .report import Report

# Weight recipes: the fq.quantize arguments of each (TensorFlow Lite's post-training
# options: int8 weights per output channel, symmetric, narrow range [-127, 127]).
INT8_WEIGHTS = {"dtype": "int8", "scheme": "symmetric", "granularity": PerChannel(0),
                "narrow_range": True}
WEIGHTS = {
    "dynamic_range": INT8_WEIGHTS,
    "full_integer": INT8_WEIGHTS,
    "int16x8": INT8_WEIGHTS,
    "int4_weight_only": {"dtype": "int4", "scheme": "symmetric", "granularity": PerGroup(128)},
    "float16": "float16",
    "float": "float",  # (kept as it is: for overrides)
}
# Activations, calibrated per tensor from the representative dataset (min/max).
ACTIVATIONS = {"full_integer": {"dtype": "int8", "scheme": "asymmetric"},
               "int16x8": {"dtype": "int16", "scheme": "symmetric"}}


def recipes():
    """Every recipe name: the fixed ones and each registered block format."""
    return tuple(WEIGHTS) + tuple(FORMATS)


def _plan(recipe, name="recipe"):
    """The quantize arguments of a recipe name or dict ("float16", "float" as strings)."""
    if isinstance(recipe, dict):
        if "dtype" not in recipe:
            raise ValueError(f"{name} {recipe!r} must give a dtype")
        return dict(recipe)
    if isinstance(recipe, str) and recipe in WEIGHTS:
        plan = WEIGHTS[recipe]
        return dict(plan) if isinstance(plan, dict) else plan
    if is_block_format(recipe):
        return {"dtype": recipe}
    raise ValueError(f"{name} must be one of {recipes()} or a dict of fq.quantize arguments, "
                     f"got {recipe!r}")


def _describe(plan):
    if isinstance(plan, str):
        return plan
    parts = [plan["dtype"]]
    g = plan.get("granularity")
    if g is not None:
        parts.append(repr(g).replace("fq.", ""))
    if plan.get("scheme") and not is_block_format(plan["dtype"]):
        parts.append(plan["scheme"])
    if plan.get("narrow_range"):
        parts.append("narrow")
    return " ".join(parts)


class QuantizedModel:
    """The result of :func:`quantize_model`: ``tensors`` (name -> QTensor or ndarray, in
    the input's order), ``recipe``, ``activations`` (name -> QParams, for
    ``full_integer`` and ``int16x8``), ``schemes`` (name -> the scheme the report
    names, e.g. ``"int8 per-channel(0) symmetric narrow"``) and ``report()``."""

    def __init__(self, tensors, recipe, activations, schemes, source):
        self.tensors, self.recipe, self.activations = tensors, recipe, activations
        self.schemes, self._source = schemes, source

    def report(self):
        """The :class:`Report`: per tensor scheme, shape, bytes before and after, bits
        per element and SQNR (``fq.metrics`` of the original and its dequantization)."""
        rows = []
        for name, t in self.tensors.items():
            original = np.asarray(to_host(self._source[name]))
            if isinstance(t, QTensor):
                after, size = t.nbytes, t.size
                sqnr = metrics(original, t.dequantize()).sqnr_db if size else float("inf")
            else:
                after, size = int(t.nbytes), int(t.size)
                same = t is original or t.dtype == original.dtype
                sqnr = float("inf") if same or not size else \
                    metrics(original, t.astype(np.float32)).sqnr_db
            rows.append({"name": name, "scheme": self.schemes[name],
                         "shape": tuple(original.shape), "bytes_before": int(original.nbytes),
                         "bytes_after": int(after),
                         "bits_per_element": 8 * after / size if size else 0.0,
                         "sqnr_db": float(sqnr)})
        return Report(rows)

    def __repr__(self):
        return f"QuantizedModel(recipe={self.recipe!r}, tensors={len(self.tensors)})"


def quantize_model(weights, recipe="dynamic_range", representative_dataset=None, *,
                   include=None, exclude=None, overrides=None, min_elements=1024):
    """Quantize a model's tensors by recipe.

    Parameters
    ----------
    weights : mapping
        Name -> array (NumPy or anything ``np.asarray`` takes, or a CUDA array).
    recipe : str
        ``"dynamic_range"`` (int8 weights, per output channel (axis 0), symmetric,
        narrow range; TFLite's dynamic-range quantization), ``"full_integer"`` (the same
        weights, plus int8 asymmetric per-tensor activation ranges from
        ``representative_dataset``), ``"float16"`` (weights cast to float16 arrays),
        ``"int16x8"`` (int8 weights; int16 symmetric activations), ``"int4_weight_only"``
        (int4 symmetric, groups of 128 along the last axis), or any block format
        registered in ``fastq.ops.blocks.FORMATS`` (``"q4_0"``, ``"nf4"``, ...): a tensor
        whose shape the format cannot take stays float, and the report says why.
    representative_dataset : iterable or callable, optional
        For ``full_integer`` / ``int16x8``: mappings name -> activation array (or a
        callable returning such an iterable, as TFLite takes it); each name gets
        per-tensor :class:`fastq.QParams` (min/max observer) in ``activations``.
    include, exclude : sequence of str, optional
        ``fnmatch`` patterns: only tensors matching ``include`` (default all), and none
        matching ``exclude``, are quantized; the others stay as they are.
    overrides : mapping, optional
        Pattern -> recipe name (``"float"`` keeps the tensor) or a dict of ``fq.quantize``
        arguments (``{"dtype": "int8", "granularity": fq.PerChannel(1)}``); the first
        matching pattern wins, and it applies even to 1-D and small tensors.
    min_elements : int
        Tensors with fewer elements, and 1-D tensors (biases, norms), stay float unless
        an override names them.  Integer and boolean tensors always pass through.

    Returns
    -------
    QuantizedModel

    Notes
    -----
    Tensors of one linear recipe whose parameters never span rows (per channel along
    axis 0, groups along the last axis), 2-D float32 with the same number of columns,
    are quantized together, a few kernel calls for many tensors
    (``fastq.calibration.batching``); the results are the same bits.
    """
    if not hasattr(weights, "items"):
        raise TypeError(f"weights must be a mapping name -> array, got {type(weights).__name__}")
    default = _plan(recipe)
    if isinstance(min_elements, bool) or not isinstance(min_elements, (int, np.integer)) \
            or min_elements < 0:
        raise ValueError(f"min_elements must be an int >= 0, got {min_elements!r}")
    overrides = dict(overrides or {})
    override_plans = {p: _plan(r, f"overrides[{p!r}]") for p, r in overrides.items()}
    activations = {}
    if recipe in ACTIVATIONS:
        activations = _calibrate(representative_dataset, ACTIVATIONS[recipe], recipe)
    tensors, schemes, batches = {}, {}, defaultdict(list)
    described = {}  # id(plan) -> its description (the same few plans for every tensor)
    for name, w in weights.items():
        a = np.asarray(to_host(w))
        plan, why = _choose(name, a, default, override_plans, include, exclude, min_elements)
        tensors[name] = a  # (the order of the input, whatever is batched)
        if plan is None or plan == "float":
            schemes[name] = why or "float"
            continue
        if plan == "float16":
            tensors[name], schemes[name] = cast(a, "float16"), "float16"
            continue
        if id(plan) not in described:
            described[id(plan)] = _describe(plan)
        schemes[name] = described[id(plan)]
        key = row_wise(a, plan)
        if key is not None:
            batches[(key, schemes[name])].append((name, a, plan))
            continue
        tensors[name], note = _quantize_one(a, plan)
        if note:
            schemes[name] = note
    for group in batches.values():
        done = quantize_batched([(n, a) for n, a, _ in group], group[0][2])
        tensors.update(done)
    return QuantizedModel(tensors, recipe, activations, schemes, weights)


def _choose(name, a, default, override_plans, include, exclude, min_elements):
    """``(plan, why)``: the quantize arguments for tensor ``name`` (None: kept)."""
    if a.dtype.kind in "biu":
        return None, f"passthrough ({a.dtype})"
    if a.dtype.kind not in "fV":
        return None, f"passthrough ({a.dtype})"
    for pattern, plan in override_plans.items():
        if fnmatch.fnmatchcase(name, pattern):
            return plan, None
    if include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return None, "float (not included)"
    if exclude is not None and any(fnmatch.fnmatchcase(name, p) for p in exclude):
        return None, "float (excluded)"
    if a.ndim <= 1:
        return None, "float (1-D)"
    if a.size < min_elements:
        return None, f"float (< {min_elements} elements)"
    return default, None


def _quantize_one(a, plan):
    """``(result, note)``; a block format that cannot take the shape keeps ``a``."""
    try:
        return quantize(a, **plan), None
    except ValueError as exc:
        if not is_block_format(plan["dtype"]):
            raise
        return a, f"float ({plan['dtype']} cannot take shape {a.shape}: {exc})"


def _calibrate(dataset, activation, recipe):
    """Per-tensor QParams of each activation name in the representative dataset."""
    if dataset is None:
        raise ValueError(f"recipe {recipe!r} needs a representative_dataset (an iterable "
                         "of mappings name -> activation array)")
    if callable(dataset):
        dataset = dataset()
    calibrators = {}
    for sample in dataset:
        if not hasattr(sample, "items"):
            raise TypeError("representative_dataset must yield mappings name -> array, got "
                            f"{type(sample).__name__}")
        for name, batch in sample.items():
            if name not in calibrators:
                calibrators[name] = Calibrator(activation["dtype"], scheme=activation["scheme"])
            calibrators[name].update(batch)
    if not calibrators:
        raise ValueError("representative_dataset is empty: it must yield at least one "
                         "mapping name -> activation array")
    return {name: c.qparams() for name, c in calibrators.items()}
