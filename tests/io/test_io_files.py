"""fq.save / fq.load: round trips, the safetensors package as a reader, hostile files."""
import json
import os
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

import fastq as fq

LINEAR = ["int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2"]
GRANULARITIES = ["tensor", fq.PerChannel(0), fq.PerChannel(-1), fq.PerGroup(32),
                 fq.PerBlock((16, 64))]


def weights(shape=(40, 100), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_same_qtensor(a, b):
    assert isinstance(b, fq.QTensor)
    assert (b.dtype, b.shape, b.granularity) == (a.dtype, a.shape, a.granularity)
    for part in ("data", "scale", "zero_point", "tensor_scale"):
        x, y = getattr(a, part), getattr(b, part)
        if x is None:
            assert y is None, part
        else:
            assert y.dtype == np.asarray(x).dtype and np.array_equal(
                np.asarray(x).reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8)), part
    assert np.array_equal(a.codes(), b.codes())


def from_random_codes(dtype, granularity, shape=(40, 100), seed=0, symmetric=False):
    """A QTensor of random codes, scales and zero points (fq.QTensor.from_codes: no
    quantization kernel to compile per dtype and granularity)."""
    from fastq.core.codes import INT_DTYPES
    from fastq.core.granularity import as_granularity
    c = INT_DTYPES[dtype]
    rng = np.random.default_rng(seed)
    params = as_granularity(granularity).param_shape(shape)
    codes = rng.integers(c.qmin, c.qmax + 1, size=shape).astype(c.code_dtype)
    scale = rng.uniform(0.01, 1.0, size=params).astype(np.float32)
    zero_point = None if symmetric and c.qmin < 0 else \
        rng.integers(c.qmin, c.qmax + 1, size=params).astype(c.code_dtype)
    return fq.QTensor.from_codes(codes, dtype, scale, zero_point, granularity)


def test_every_linear_dtype_and_granularity_round_trips(tmp_path):
    tensors = {f"{d}.{i}": from_random_codes(d, g, seed=i)
               for d in LINEAR for i, g in enumerate(GRANULARITIES)}
    tensors["int4.symmetric"] = from_random_codes("int4", fq.PerGroup(32), symmetric=True)
    tensors["int2.odd"] = from_random_codes("int2", fq.PerChannel(1), shape=(3, 7))
    x = weights()  # and what fq.quantize makes
    tensors["quantized"] = fq.quantize(x, "int8", scheme="symmetric",
                                       granularity=fq.PerChannel(0), narrow_range=True)
    tensors["quantized4"] = fq.quantize(x, "int4", granularity=fq.PerGroup(32))
    path = tmp_path / "q.safetensors"
    fq.save(path, tensors, metadata={"fastq.recipe": "test"})
    back = fq.load(path)
    assert list(back) == list(tensors)
    for name, qt in tensors.items():
        assert_same_qtensor(qt, back[name])
    for name in ("quantized", "quantized4", "uint8.1", "int4.3"):
        assert np.array_equal(tensors[name].dequantize(), back[name].dequantize())


def test_plain_tensors_keep_dtype_shape_and_bits(tmp_path):
    x = weights((6, 10))
    tensors = {"f32": x, "f16": x.astype(np.float16), "bf16": x.astype(ml_dtypes.bfloat16),
               "f64": x.astype(np.float64), "e4m3": x.astype(ml_dtypes.float8_e4m3fn),
               "e2m1": x.astype(ml_dtypes.float4_e2m1fn),  # no safetensors code: raw bytes
               "position_ids": np.arange(12, dtype=np.int64)[None], "i32": np.arange(3, dtype=np.int32),
               "mask": np.array([True, False]), "scalar": np.float32(2.5),
               "empty": np.zeros((0, 4), np.float32), "strided": x[::2, ::-3]}
    path = tmp_path / "plain.safetensors"
    fq.save(path, tensors)
    back = fq.load(path)
    assert list(back) == list(tensors)
    for name, a in tensors.items():
        a = np.asarray(a)
        b = back[name]
        assert type(b) is np.ndarray and b.dtype == a.dtype and b.shape == a.shape, name
        assert np.array_equal(np.require(a, requirements="C").reshape(-1).view(np.uint8),
                              b.reshape(-1).view(np.uint8)), name
        assert not b.flags.writeable  # a view of the mapped file
        assert b.size == 0 or b.flags.aligned


def test_the_safetensors_package_reads_the_file(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    x = weights()
    qt = fq.quantize(x, "int4", granularity=fq.PerGroup(32))
    path = tmp_path / "q.safetensors"
    fq.save(path, {"w": qt, "b": x[0], "ids": np.arange(5)})
    read = safetensors_numpy.load_file(str(path))
    assert sorted(read) == ["b", "ids", "w.__q_data", "w.__q_scale", "w.__q_zero_point"]
    assert np.array_equal(read["w.__q_data"], qt.data)
    assert np.array_equal(read["w.__q_scale"], qt.scale)
    assert np.array_equal(read["b"], x[0]) and np.array_equal(read["ids"], np.arange(5))


def test_the_safetensors_package_reads_bfloat16_and_metadata(tmp_path):
    safe_open = pytest.importorskip("safetensors").safe_open
    torch = pytest.importorskip("torch")
    x = weights((4, 8))
    path = tmp_path / "bf.safetensors"
    fq.save(path, {"w": x.astype(ml_dtypes.bfloat16), "q": fq.quantize(x, "uint8")},
            metadata={"fastq.recipe": "demo"})
    with safe_open(str(path), framework="pt") as f:
        w = f.get_tensor("w")
        meta = f.metadata()
    assert w.dtype == torch.bfloat16
    assert np.array_equal(w.view(torch.int16).numpy(), x.astype(ml_dtypes.bfloat16).view(np.int16))
    assert meta["fastq.recipe"] == "demo" and json.loads(meta["fastq.qtensor.q"])["dtype"] == "uint8"


def test_fq_load_reads_files_the_safetensors_package_wrote(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    x = weights((3, 5))
    path = tmp_path / "hf.safetensors"
    safetensors_numpy.save_file({"a": x, "ids": np.arange(7, dtype=np.int64)}, str(path))
    back = fq.load(path)
    assert np.array_equal(back["a"], x) and np.array_equal(back["ids"], np.arange(7))


def test_bad_arguments_write_nothing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="tensors"):
        fq.save(path, [1, 2])
    with pytest.raises(TypeError, match="'bad'"):
        fq.save(path, {"ok": np.zeros(3), "bad": np.array(["text"])})
    with pytest.raises(ValueError, match="collide"):
        fq.save(path, {"w": fq.quantize(weights(), "int8"), "w.__q_data": np.zeros(1)})
    with pytest.raises(ValueError, match="directory"):
        fq.save(tmp_path / "missing" / "x.safetensors", {"a": np.zeros(1)})
    assert os.listdir(tmp_path) == []


# ---- hostile files -------------------------------------------------------------------

def raw_file(path, header, body=b"", length=None):
    text = json.dumps(header).encode()
    n = len(text) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + text + body)
    return path


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, body, why", [
    ({"a": {**ENTRY, "dtype": "F7"}}, bytes(8), "unknown dtype"),
    ({"a": {**ENTRY, "data_offsets": [0, 16]}}, bytes(8), "outside"),
    ({"a": {**ENTRY, "data_offsets": [8, 0]}}, bytes(8), "outside"),
    ({"a": {**ENTRY, "shape": [1 << 40, 1 << 40]}}, bytes(8), "does not fill"),
    ({"a": {**ENTRY, "shape": [-2]}}, bytes(8), "shape"),
    ({"a": {**ENTRY, "shape": [2.0]}}, bytes(8), "shape"),
    ({"a": ENTRY, "b": {**ENTRY, "data_offsets": [4, 12]}}, bytes(12), "overlap"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "data_offsets"),
    ([1, 2], b"", "JSON object"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
    ({"a": ENTRY, "__metadata__": {"fastq.qtensor.a": "{not json"}}, bytes(8), "not JSON"),
    ({"a": ENTRY, "__metadata__": {"fastq.qtensor.q": json.dumps(
        {"dtype": "int8", "shape": [2], "granularity": None,
         "parts": {"data": {"tensor": "missing"}}})}}, bytes(8), "parts"),
    ({"a": ENTRY, "__metadata__": {"fastq.qtensor.q": json.dumps(
        {"dtype": "int3", "shape": [2], "granularity": None,
         "parts": {"data": {"tensor": "a"}}})}}, bytes(8), "unknown dtype"),
    ({"a": ENTRY, "__metadata__": {"fastq.dtype.a": "float4_e2m1fn"}}, bytes(8), "bytes"),
])
def test_lying_headers_raise_value_error(tmp_path, header, body, why):
    path = raw_file(tmp_path / "bad.safetensors", header, body)
    with pytest.raises(ValueError, match=why):
        fq.load(path)


def test_quantized_metadata_that_does_not_fit_its_parts(tmp_path):
    qt = fq.quantize(weights(), "int8", granularity=fq.PerChannel(0))
    path = tmp_path / "q.safetensors"
    fq.save(path, {"w": qt})
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    entry = json.loads(header["__metadata__"]["fastq.qtensor.w"])
    entry["granularity"] = {"type": "PerChannel", "axis": 1}  # scale has 40, not 100
    header["__metadata__"]["fastq.qtensor.w"] = json.dumps(entry)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n:])
    with pytest.raises(ValueError, match="scale"):
        fq.load(path)


@pytest.mark.parametrize("length", [0, 1, 1 << 62, (1 << 64) - 1, 200])
def test_header_length_past_the_end(tmp_path, length):
    path = raw_file(tmp_path / "bad.safetensors", {"a": ENTRY}, bytes(8), length=length)
    with pytest.raises(ValueError):
        fq.load(path)


def test_truncations_raise_value_error(tmp_path):
    path = tmp_path / "ok.safetensors"
    fq.save(path, {"w": fq.quantize(weights((8, 8)), "int4"), "b": np.ones(3, np.float32)})
    blob = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for end in sorted({0, 3, 7, 8, 9, 20, len(blob) // 2, len(blob) - 5, len(blob) - 1}):
        cut.write_bytes(blob[:end])
        with pytest.raises(ValueError):
            fq.load(cut)


def test_fuzzed_headers_raise_only_value_error(tmp_path):
    path = tmp_path / "ok.safetensors"
    fq.save(path, {"w": fq.quantize(weights((8, 8)), "uint4", granularity=fq.PerGroup(4)),
                   "b": np.ones(3, np.float32)})
    blob = bytearray(path.read_bytes())
    n = int.from_bytes(blob[:8], "little")
    rng = np.random.default_rng(7)
    fuzzed = tmp_path / "fuzz.safetensors"
    for _ in range(300):
        mutated = bytearray(blob)
        for at in rng.integers(8, 8 + n, size=rng.integers(1, 4)):
            mutated[at] = int(rng.choice(list(b'0123456789[]{}",:-e ')))
        fuzzed.write_bytes(bytes(mutated))
        try:
            loaded = fq.load(fuzzed)
        except ValueError:
            continue
        for value in loaded.values():  # what loads must be usable
            if isinstance(value, fq.QTensor):
                try:
                    value.dequantize()
                except ValueError:
                    pass


def test_a_huge_declared_shape_allocates_nothing(tmp_path):
    header = {"a": {"dtype": "F64", "shape": [1 << 31, 1 << 31], "data_offsets": [0, 8]}}
    path = raw_file(tmp_path / "huge.safetensors", header, bytes(8))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            fq.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_not_a_file(tmp_path):
    with pytest.raises(OSError):
        fq.load(tmp_path / "missing.safetensors")
