"""fq.quantize_model (recipes, rules, report, one-pass batching) and fq.Quantizer."""
import json
import pickle

import numpy as np
import pytest

import fastq as fq
from fastq.calibration import batching

RNG = np.random.default_rng(7)


def transformer(layers=12, d=384):
    """A synthetic transformer-shaped weight set: 384x384 and 384x1536 matrices, biases,
    norms, and the integer and boolean tensors real checkpoints hold."""
    w = {}
    for i in range(layers):
        w[f"h.{i}.attn.qkv.weight"] = RNG.standard_normal((d, d)).astype(np.float32)
        w[f"h.{i}.attn.qkv.bias"] = RNG.standard_normal(d).astype(np.float32)
        w[f"h.{i}.mlp.up.weight"] = RNG.standard_normal((4 * d, d)).astype(np.float32)
        w[f"h.{i}.mlp.down.weight"] = RNG.standard_normal((d, 4 * d)).astype(np.float32)
        w[f"h.{i}.norm.weight"] = np.ones(d, np.float32)
    w["position_ids"] = np.arange(512, dtype=np.int64)
    w["attention_mask"] = np.ones((8, 8), bool)
    return w


WEIGHTS = transformer(layers=2)


def matrices(weights):
    return {k: v for k, v in weights.items() if v.ndim == 2 and v.dtype == np.float32}


@pytest.mark.parametrize("recipe,bits", [("dynamic_range", 8), ("float16", 16),
                                         ("int4_weight_only", 4)])
def test_recipes_give_textbook_sizes(recipe, bits):
    qm = fq.quantize_model(WEIGHTS, recipe=recipe)
    rep = qm.report()
    params = sum(v.size for v in matrices(WEIGHTS).values())
    other = sum(v.nbytes for k, v in WEIGHTS.items() if k not in matrices(WEIGHTS))
    textbook = (params * 4 + other) / (params * bits / 8 + other)  # parameters times bits
    assert rep.totals["ratio"] == pytest.approx(textbook, rel=0.07 if bits == 4 else 0.01)
    assert rep.totals["bytes_before"] == sum(v.nbytes for v in WEIGHTS.values())
    assert list(qm.tensors) == list(WEIGHTS)  # the input's order
    assert qm.recipe == recipe and qm.activations == {}


def test_dynamic_range_is_fq_quantize_bit_for_bit():
    qm = fq.quantize_model(WEIGHTS)
    for name, w in matrices(WEIGHTS).items():
        ref = fq.quantize(w, "int8", scheme="symmetric", granularity=fq.PerChannel(0),
                          narrow_range=True)
        qt = qm.tensors[name]
        assert isinstance(qt, fq.QTensor)
        assert np.array_equal(qt.data, ref.data) and np.array_equal(qt.scale, ref.scale)
        assert qt.zero_point is None and qt.shape == w.shape
        assert np.array_equal(qt.dequantize(), ref.dequantize())
    assert qm.tensors["position_ids"] is WEIGHTS["position_ids"]  # passed through
    assert qm.tensors["attention_mask"] is WEIGHTS["attention_mask"]
    assert qm.tensors["h.0.attn.qkv.bias"] is WEIGHTS["h.0.attn.qkv.bias"]  # 1-D: float


@pytest.mark.parametrize("granularity,dtype", [(fq.PerChannel(0), "int8"),
                                               (fq.PerGroup(128), "int4"),
                                               (fq.PerGroup(100), "uint8"),
                                               (fq.PerGroup(64), "int2")])
def test_batched_equals_one_by_one(granularity, dtype, monkeypatch):
    monkeypatch.setattr(batching, "BATCH_ELEMENTS", 3 * 384 * 384)  # several batches
    monkeypatch.setattr(batching, "BATCH_BELOW", 1 << 30)
    tensors = [(f"t{i}", RNG.standard_normal((r, 384)).astype(np.float32))
               for i, r in enumerate([384, 7, 1536, 384, 1, 384])]
    kwargs = {"dtype": dtype, "granularity": granularity, "scheme": "asymmetric"}
    assert batching.row_wise(tensors[0][1], kwargs) is not None
    got = batching.quantize_batched(tensors, kwargs)
    for name, a in tensors:
        ref = fq.quantize(a, **kwargs)
        qt = got[name]
        assert np.array_equal(qt.data, ref.data), name
        assert np.array_equal(qt.scale, ref.scale)
        assert np.array_equal(qt.zero_point, ref.zero_point)
        assert np.array_equal(qt.codes(), ref.codes())
        assert qt.nbytes == ref.nbytes


def test_small_tensors_are_batched_in_quantize_model():
    w = {f"t{i}": RNG.standard_normal((16 + i, 64)).astype(np.float32) for i in range(40)}
    qm = fq.quantize_model(w, min_elements=0)
    for name, a in w.items():
        ref = fq.quantize(a, "int8", scheme="symmetric", granularity=fq.PerChannel(0),
                          narrow_range=True)
        assert np.array_equal(qm.tensors[name].data, ref.data)
        assert np.array_equal(qm.tensors[name].scale, ref.scale)
        assert qm.tensors[name].data.base is qm.tensors["t0"].data.base  # one batch


def test_rules_include_exclude_overrides():
    w = {"a.weight": RNG.standard_normal((64, 64)).astype(np.float32),
         "b.weight": RNG.standard_normal((64, 64)).astype(np.float32),
         "small": RNG.standard_normal((8, 8)).astype(np.float32),
         "bias": RNG.standard_normal(64).astype(np.float32),
         "head": RNG.standard_normal((64, 64)).astype(np.float64)}
    qm = fq.quantize_model(w, exclude=["b.*"], overrides={
        "bias": "dynamic_range", "head": {"dtype": "uint8", "granularity": fq.PerChannel(1)},
        "a.*": "float"})
    t = qm.tensors
    assert t["a.weight"] is w["a.weight"] and t["b.weight"] is w["b.weight"]
    assert t["small"] is w["small"]  # below min_elements
    assert isinstance(t["bias"], fq.QTensor) and t["bias"].dtype == "int8"  # override
    assert t["head"].dtype == "uint8" and t["head"].scale.shape == (64,)
    schemes = {r["name"]: r["scheme"] for r in qm.report().rows}
    assert schemes["b.weight"] == "float (excluded)" and schemes["a.weight"] == "float"
    assert "elements" in schemes["small"]
    qm = fq.quantize_model(w, include=["b.*"], min_elements=0)
    assert isinstance(qm.tensors["b.weight"], fq.QTensor)
    assert qm.tensors["a.weight"] is w["a.weight"]
    assert qm.tensors["small"] is w["small"]


def test_block_format_recipe_keeps_what_it_cannot_take(monkeypatch):
    """A registered block format is a recipe by name; a shape it refuses stays float."""
    import types
    from fastq.ops import blocks

    def quantize(x, dtype, **options):
        x = np.asarray(x, np.float32)
        if x.shape[-1] % 32:
            raise ValueError("the last axis must be a multiple of 32")
        return fq.quantize(x, "int8", scheme="symmetric", granularity=fq.PerGroup(32))

    fake = types.ModuleType("fastq.ops.formats.fake")
    fake.quantize = quantize
    monkeypatch.setitem(blocks.FORMATS, "fake32", "fake")
    monkeypatch.setitem(__import__("sys").modules, "fastq.ops.formats.fake", fake)
    w = {"ok": RNG.standard_normal((64, 64)).astype(np.float32),
         "odd": RNG.standard_normal((64, 65)).astype(np.float32)}
    qm = fq.quantize_model(w, recipe="fake32")
    assert isinstance(qm.tensors["ok"], fq.QTensor)
    assert qm.tensors["odd"] is w["odd"]
    row = [r for r in qm.report().rows if r["name"] == "odd"][0]
    assert "cannot take shape (64, 65)" in row["scheme"] and row["sqnr_db"] == float("inf")


def test_full_integer_and_int16x8_activations():
    acts = [{"x": RNG.standard_normal((4, 16)).astype(np.float32) * (i + 1),
             "y": np.abs(RNG.standard_normal(32)).astype(np.float32)} for i in range(5)]
    qm = fq.quantize_model(WEIGHTS, "full_integer", representative_dataset=acts)
    assert set(qm.activations) == {"x", "y"}
    ref = fq.choose_qparams(np.concatenate([a["x"].ravel() for a in acts]), "int8")
    assert np.array_equal(qm.activations["x"].scale, ref.scale)
    assert np.array_equal(qm.activations["x"].zero_point, ref.zero_point)
    qm = fq.quantize_model(WEIGHTS, "int16x8", representative_dataset=lambda: iter(acts))
    ref = fq.choose_qparams(np.concatenate([a["y"] for a in acts]), "int16",
                            scheme="symmetric")
    assert np.array_equal(qm.activations["y"].scale, ref.scale)
    assert qm.activations["y"].zero_point is None
    assert qm.tensors["h.0.mlp.up.weight"].dtype == "int8"


def test_report_forms():
    qm = fq.quantize_model(WEIGHTS)
    rep = qm.report()
    assert set(rep.rows[0]) == {"name", "scheme", "shape", "bytes_before", "bytes_after",
                                "bits_per_element", "sqnr_db"}
    row = rep.rows[0]
    x = WEIGHTS[row["name"]]
    assert row["sqnr_db"] == pytest.approx(
        fq.metrics(x, qm.tensors[row["name"]].dequantize()).sqnr_db)
    assert row["bits_per_element"] == pytest.approx(8 * row["bytes_after"] / x.size)
    d = rep.as_dict()
    assert d["totals"] == rep.totals and len(d["rows"]) == len(WEIGHTS)
    json.dumps({**d, "rows": [{**r, "sqnr_db": str(r["sqnr_db"])} for r in d["rows"]]})
    md = str(rep)
    assert md == rep.to_markdown() and md.startswith("| name | scheme |")
    assert "h.0.mlp.up.weight" in md and f"{rep.totals['ratio']:.3f}x" in md


def test_bad_input():
    with pytest.raises(ValueError, match="recipe"):
        fq.quantize_model(WEIGHTS, recipe="int3")
    with pytest.raises(ValueError, match="representative_dataset"):
        fq.quantize_model(WEIGHTS, recipe="full_integer")
    with pytest.raises(ValueError, match="empty"):
        fq.quantize_model(WEIGHTS, recipe="full_integer", representative_dataset=[])
    with pytest.raises(TypeError, match="mapping"):
        fq.quantize_model([np.ones(3)])
    with pytest.raises(ValueError, match="overrides"):
        fq.quantize_model(WEIGHTS, overrides={"*": "int3"})


def test_quantizer_fit_transform_pickle():
    batches = [RNG.standard_normal((10, 8)).astype(np.float32) for _ in range(4)]
    qz = fq.Quantizer("int8", granularity=fq.PerChannel(-1), observer="percentile",
                      percentile=99.99).fit(batches)
    cal = fq.Calibrator("int8", granularity=fq.PerChannel(-1), observer="percentile",
                        percentile=99.99)
    for b in batches:
        cal.update(b)
    p = cal.qparams()
    x = RNG.standard_normal((5, 8)).astype(np.float32)
    qt = qz.transform(x)
    ref = fq.quantize(x, "int8", granularity=fq.PerChannel(-1), scale=p.scale,
                      zero_point=p.zero_point)
    assert np.array_equal(qt.data, ref.data)
    assert np.array_equal(qz.inverse_transform(qt), ref.dequantize())
    again = pickle.loads(pickle.dumps(qz))
    assert np.array_equal(again.transform(x).data, qt.data)
    again.partial_fit(batches[0] * 10)  # a stream goes on after unpickling
    assert np.all(again.qparams_.scale >= qz.qparams_.scale)
    one = fq.Quantizer("uint8").fit(batches[0])  # one array is one batch
    assert np.array_equal(one.qparams_.scale, fq.choose_qparams(batches[0], "uint8").scale)
    streamed = fq.Quantizer("uint8")
    for b in batches:
        streamed.partial_fit(b)
    assert np.array_equal(streamed.qparams_.scale,
                          fq.Quantizer("uint8").fit(iter(batches)).qparams_.scale)


def test_quantizer_bad_input():
    with pytest.raises(ValueError, match="empty"):
        fq.Quantizer("int8").fit([])
    with pytest.raises(ValueError, match="fit"):
        fq.Quantizer("int8").transform(np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        fq.Quantizer("int8", granularity=fq.PerChannel(0)).fit([np.ones((2, 3)),
                                                                np.ones((3, 3))])
    with pytest.raises(ValueError, match="observer"):
        fq.Quantizer("int8", observer="max")
