"""GGML q2_K and q3_K: byte for byte llama.cpp's reference quantizer (vectors in
tests/data/kquant_vectors.npz, made by tests/data/gen_kquant_vectors.py from
``quantize_row_q2_K_ref`` / ``quantize_row_q3_K_ref``), ``fq.dequantize`` bit for bit
``gguf.quants.dequantize``, and through GGUF files."""
import os

import numpy as np
import pytest

import fastq as fq

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402

FORMATS = ("q2_K", "q3_K")
BITS = {"q2_K": 2.625, "q3_K": 3.4375}  # llama.cpp's "effectively ... bits per weight"
BLOCK_BYTES = {"q2_K": 84, "q3_K": 110}
VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "kquant_vectors.npz")


def qtype(fmt):
    return getattr(gguf.GGMLQuantizationType, fmt.upper())


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(scope="module")
def vectors():
    z = np.load(VECTORS)
    return {k: z[k] for k in z.files}


def names(vectors):
    return [k[2:] for k in vectors if k.startswith("x/")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_equal_llama_cpp_reference(fmt, vectors):
    for name in names(vectors):
        x, ref = vectors["x/" + name], vectors[f"{fmt}/{name}"]
        qt = fq.quantize(x, fmt)
        assert qt.data.dtype == np.uint8 and np.array_equal(qt.data, ref), name
        assert same_bits(fq.dequantize(qt), gguf_dequantize(ref, qtype(fmt))), name
        assert qt.bits_per_element == BITS[fmt] and qt.shape == x.shape


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_layouts_and_parallel(fmt, vectors):
    # super-blocks are independent: the inputs side by side, as rows, in other layouts
    # and repeated past the serial size, give the reference bytes side by side
    x = np.concatenate([vectors["x/" + n] for n in names(vectors)])
    ref = np.concatenate([vectors[f"{fmt}/{n}"] for n in names(vectors)])
    rows = fq.quantize(x.reshape(-1, 512), fmt)
    assert rows.data.shape == (x.size // 512, 2 * BLOCK_BYTES[fmt])
    assert np.array_equal(rows.data.reshape(-1), ref)
    m = x.reshape(-1, 256)
    assert np.array_equal(fq.quantize(np.asfortranarray(m), fmt).data.reshape(-1), ref)
    assert np.array_equal(fq.quantize(m[::-1], fmt).data,
                          ref.reshape(-1, BLOCK_BYTES[fmt])[::-1])
    assert np.array_equal(fq.quantize(x.astype(np.float64), fmt).data, ref)
    big = fq.quantize(np.tile(x, 8), fmt)  # (past the serial size: the threaded path)
    assert np.array_equal(big.data, np.tile(ref, 8))
    assert same_bits(big.dequantize(), gguf_dequantize(big.data, qtype(fmt)))
    half = fq.quantize(m[:5].astype(np.float16), fmt)  # float16 in: its float32 values
    assert np.array_equal(half.data, fq.quantize(m[:5].astype(np.float16)
                                                 .astype(np.float32), fmt).data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_streamed_dequantize(monkeypatch, fmt, vectors):
    """Outputs past the last-level cache are written by non-temporal stores where the
    output is 16-byte aligned, plain stores elsewhere: the same bits either way."""
    from fastq.kernels.cpu import parallel as _parallel
    from fastq.kernels.cpu.blocks.kquant import low as kernels
    x = np.concatenate([vectors["x/" + n] for n in names(vectors)])
    qt = fq.quantize(x, fmt)
    want = gguf_dequantize(qt.data, qtype(fmt))
    monkeypatch.setattr(_parallel, "STREAM_ABOVE", 0)
    assert same_bits(fq.dequantize(qt), want)
    raw = np.zeros(x.size + 4, np.float32)
    for start in (0, 1, 2, 3):  # (one of them 16-byte aligned)
        out = raw[start:start + x.size]
        kernels.dequantize(qt.data.reshape(-1), FORMATS.index(fmt), out)
        assert same_bits(out, want), start


def test_codes_rebuild_the_values():
    # the codes with the block scales decoded here in NumPy give fq.dequantize's values
    x = np.random.default_rng(4).standard_normal((3, 512)).astype(np.float32)
    qt = fq.quantize(x, "q2_K")
    c = qt.codes()
    assert c.dtype == np.uint8 and c.shape == x.shape and c.max() <= 3
    blocks = qt.data.reshape(-1, 84)
    d = blocks[:, 80:82].copy().view(np.float16).astype(np.float32)
    dmin = blocks[:, 82:84].copy().view(np.float16).astype(np.float32)
    sc = blocks[:, :16]
    dl = (d * (sc & 15).astype(np.float32))[:, :, None]
    ml = (dmin * (sc >> 4).astype(np.float32))[:, :, None]
    values = dl * c.reshape(-1, 16, 16).astype(np.float32) - ml
    assert same_bits(fq.dequantize(qt), values.reshape(x.shape))

    qt = fq.quantize(x, "q3_K")
    c = qt.codes()
    assert c.dtype == np.uint8 and c.shape == x.shape and c.max() <= 7
    blocks = qt.data.reshape(-1, 110)
    d = blocks[:, 108:110].copy().view(np.float16).astype(np.float32)
    s = blocks[:, 96:108].astype(np.int32)
    j = np.arange(16)
    low = np.where(j < 8, s[:, j % 8] & 15, s[:, j % 8] >> 4)
    high = (s[:, 8 + j % 4] >> (2 * (j // 4))) & 3
    dl = (d * ((low | (high << 4)) - 32).astype(np.float32))[:, :, None]
    values = dl * (c.reshape(-1, 16, 16).astype(np.float32) - 4)
    assert same_bits(fq.dequantize(qt), values.reshape(x.shape))


def test_gguf_file_round_trip(tmp_path):
    x = np.random.default_rng(6).standard_normal((3, 768)).astype(np.float32)
    tensors = {f: fq.quantize(x, f) for f in FORMATS}
    path = tmp_path / "low.gguf"
    fq.gguf.write(path, tensors)
    reader = gguf.GGUFReader(path)
    assert {t.name: int(t.tensor_type) for t in reader.tensors} == {"q2_K": 10, "q3_K": 11}
    back = fq.gguf.read(path)
    for t in reader.tensors:
        qt = tensors[t.name]
        assert np.array_equal(np.asarray(t.data).reshape(-1), qt.data.reshape(-1))
        assert same_bits(gguf_dequantize(t.data, t.tensor_type).reshape(x.shape),
                         fq.dequantize(qt))
        assert back[t.name].dtype == t.name and back[t.name].shape == x.shape
        assert np.array_equal(back[t.name].data, qt.data)


def test_empty():
    for fmt in FORMATS:
        qt = fq.quantize(np.zeros((0, 256), np.float32), fmt)
        assert qt.data.shape == (0, BLOCK_BYTES[fmt]) and fq.dequantize(qt).shape == (0, 256)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_input(fmt):
    with pytest.raises(ValueError, match="multiple of the block size 256"):
        fq.quantize(np.zeros((2, 288), np.float32), fmt)
    with pytest.raises(ValueError, match="block size 256"):
        fq.quantize(np.float32(1.0), fmt)
    with pytest.raises(ValueError, match="overflow"):
        fq.quantize(np.full((1, 256), 1e8, np.float32), fmt)
    with pytest.raises(ValueError, match="overflow"):  # (q3_K: where C's sums overflow)
        fq.quantize(np.full((1, 256), 1e20, np.float32), fmt)
    x = np.ones((2, 256), np.float32)
    x[1, 3] = -np.inf
    with pytest.raises(ValueError, match=r"1 block\(s\).*overflow"):
        fq.quantize(x, fmt)
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(x, fmt)
    qt = fq.quantize(x, fmt, nan_policy="ignore")  # written as the arithmetic falls
    assert np.array_equal(qt.data[0], fq.quantize(x[:1], fmt).data[0])
    with pytest.raises(ValueError, match="qt.data"):
        fq.dequantize(fq.QTensor(np.zeros(7, np.uint8), fmt, None, None, (256,), None))
