"""fq.gguf.write / fq.gguf.read against the gguf package's reader and dequantizer."""
import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.ops.blocks import FORMATS

gguf = pytest.importorskip("gguf")
GGML = [f for f in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "mxfp4")
        if f in FORMATS]


def weights(shape=(3, 512), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_float_and_integer_tensors_round_trip(tmp_path):
    x = weights((5, 64))
    tensors = {"f32": x, "f16": x.astype(np.float16), "bf16": x.astype(ml_dtypes.bfloat16),
               "f64": x[0].astype(np.float64), "ids": np.arange(9, dtype=np.int64),
               "i8": np.arange(-4, 4, dtype=np.int8), "cube": weights((2, 3, 4))}
    path = tmp_path / "m.gguf"
    fq.gguf.write(path, tensors, metadata={"fastq.recipe": "float16"})
    back = fq.gguf.read(path)
    assert list(back) == list(tensors)
    for name, a in tensors.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape, name
        assert np.array_equal(back[name].view(np.uint8), a.view(np.uint8)), name
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types == {"f32": "F32", "f16": "F16", "bf16": "BF16", "f64": "F64", "ids": "I64",
                     "i8": "I8", "cube": "F32"}
    cube = next(t for t in reader.tensors if t.name == "cube")
    assert cube.shape.tolist() == [4, 3, 2]  # GGUF lists dimensions innermost first
    assert bytes(reader.fields["fastq.recipe"].parts[-1]).decode() == "float16"


@pytest.mark.skipif(not GGML, reason="no GGML block format registered")
def test_ggml_formats_are_stored_natively_and_dequantize_like_gguf(tmp_path):
    from gguf.quants import dequantize
    x = weights((3, 512))
    tensors = {f: fq.quantize(x, f) for f in GGML}
    path = tmp_path / "q.gguf"
    fq.gguf.write(path, tensors)
    reader = gguf.GGUFReader(path)
    back = fq.gguf.read(path)
    for t in reader.tensors:
        qt = tensors[t.name]
        assert t.tensor_type.name == t.name.upper()
        assert np.array_equal(np.asarray(t.data).reshape(-1), qt.data.reshape(-1))
        assert np.array_equal(dequantize(t.data, t.tensor_type).reshape(x.shape),
                              fq.dequantize(qt))
        assert back[t.name].dtype == qt.dtype and back[t.name].shape == qt.shape
        assert np.array_equal(back[t.name].dequantize(), fq.dequantize(qt))


@pytest.mark.skipif(not GGML, reason="no GGML block format registered")
def test_ggml_qtensors_round_trip_through_safetensors_too(tmp_path):
    tensors = {f: fq.quantize(weights((2, 256)), f) for f in GGML}
    fq.save(tmp_path / "q.safetensors", tensors)
    back = fq.load(tmp_path / "q.safetensors")
    for name, qt in tensors.items():
        assert back[name].dtype == qt.dtype and back[name].granularity == qt.granularity
        assert np.array_equal(back[name].data, qt.data)
        assert np.array_equal(back[name].dequantize(), qt.dequantize())


@pytest.mark.parametrize("value, why", [
    (fq.quantize(np.ones((4, 32), np.float32), "int8"), "int8 QTensor"),
    (np.zeros(4, np.uint8), "uint8"),
    (np.zeros(4, bool), "bool"),
])
def test_what_gguf_cannot_hold_is_a_value_error_naming_it(tmp_path, value, why):
    path = tmp_path / "x.gguf"
    with pytest.raises(ValueError, match=f"'the_tensor'.*{why}"):
        fq.gguf.write(path, {"ok": np.zeros(3, np.float32), "the_tensor": value})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_long_names_and_missing_directories(tmp_path):
    with pytest.raises(ValueError, match="names"):
        fq.gguf.write(tmp_path / "x.gguf", {"n" * 64: np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="directory"):
        fq.gguf.write(tmp_path / "no" / "x.gguf", {"a": np.zeros(1, np.float32)})


def test_hostile_gguf_files_raise_value_error(tmp_path):
    path = tmp_path / "ok.gguf"
    fq.gguf.write(path, {"a": weights((4, 64)), "b": np.arange(3)})
    blob = path.read_bytes()
    bad = tmp_path / "bad.gguf"
    for cut in (0, 3, 4, 20, len(blob) // 2, len(blob) - 30):  # (the tail is padding)
        bad.write_bytes(blob[:cut])
        with pytest.raises(ValueError):
            fq.gguf.read(bad)
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError):
        fq.gguf.read(bad)
