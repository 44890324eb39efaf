"""fq.pack / fq.unpack: layout against NumPy, ONNX and torch; kernels; validation."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastq as fq
from fastq.kernels.cpu import pack as kernels
from fastq.core.layout import SERIAL_BELOW


def reference_pack(codes, bits):
    """Independent NumPy packing: field k of byte j is code j*per+k, low bits first."""
    per = 8 // bits
    flat = np.asarray(codes).reshape(-1).astype(np.int64) & ((1 << bits) - 1)
    padded = np.zeros(-(-flat.size // per) * per, np.int64)
    padded[:flat.size] = flat
    fields = padded.reshape(-1, per) << (bits * np.arange(per))
    return fields.sum(axis=1).astype(np.uint8)


def reference_unpack(packed, bits, count, signed):
    per = 8 // bits
    fields = (np.asarray(packed, np.int64)[:, None] >> (bits * np.arange(per))) & ((1 << bits) - 1)
    codes = fields.reshape(-1)[:count]
    if signed:
        codes = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes.astype(np.int8 if signed else np.uint8)


def code_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


CASES = [(bits, signed) for bits in (4, 2) for signed in (True, False)]


@pytest.mark.parametrize("bits,signed", CASES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 31, 33, 1000, 1001])
def test_round_trip_and_reference(bits, signed, n, rng):
    lo, hi = code_range(bits, signed)
    codes = rng.integers(lo, hi + 1, n).astype(np.int8 if signed else np.uint8)
    packed = fq.pack(codes, bits=bits)
    assert packed.dtype == np.uint8 and packed.ndim == 1
    assert packed.size == -(-n * bits // 8)
    assert np.array_equal(packed, reference_pack(codes, bits))
    back = fq.unpack(packed, bits=bits, count=n, signed=signed)
    assert back.dtype == (np.int8 if signed else np.uint8) and back.shape == (n,)
    assert np.array_equal(back, codes)
    assert np.array_equal(back, reference_unpack(packed, bits, n, signed))


@pytest.mark.parametrize("bits,signed", CASES)
def test_exhaustive_bytes_unpack(bits, signed):
    """Every byte value unpacks to its fields, sign-extended or not."""
    packed = np.arange(256, dtype=np.uint8)
    per = 8 // bits
    got = fq.unpack(packed, bits=bits, signed=signed)
    assert got.size == 256 * per
    assert np.array_equal(got, reference_unpack(packed, bits, 256 * per, signed))
    assert np.array_equal(fq.pack(got, bits=bits), packed)


def test_first_code_in_low_bits_and_padding():
    assert fq.pack(np.array([1, 2, 3], np.uint8), bits=4).tolist() == [0x21, 0x03]
    assert fq.pack([-1, 0, 7], bits=4).tolist() == [0x0F, 0x07]
    assert fq.pack([-8], bits=4).tolist() == [0x08]
    assert fq.pack(np.array([1, 2, 3, 0, 3], np.uint8), bits=2).tolist() == [0b00111001, 0b11]
    assert fq.pack([-2, 1, -1], bits=2).tolist() == [0b11_01_10]
    assert fq.unpack([0xF8], bits=4, count=2).tolist() == [-8, -1]
    assert fq.unpack([0xF8], bits=4, count=1, signed=False).tolist() == [8]


@pytest.mark.parametrize("bits,signed", CASES)
@pytest.mark.parametrize("extra", [0, 1, 3])
def test_parallel_path(bits, signed, extra, rng):
    """Sizes past SERIAL_BELOW take the prange wrappers, odd tails included."""
    n = 2 * SERIAL_BELOW + 8 * 37 + extra
    lo, hi = code_range(bits, signed)
    codes = rng.integers(lo, hi + 1, n).astype(np.int8 if signed else np.uint8)
    packed = fq.pack(codes, bits=bits)
    assert np.array_equal(packed, reference_pack(codes, bits))
    assert np.array_equal(fq.unpack(packed, bits=bits, count=n, signed=signed), codes)
    serial = np.empty_like(packed)
    kernels.pack_codes(codes, bits, serial)
    assert np.array_equal(serial, packed)
    out = np.empty(n, np.uint8)
    kernels.unpack_codes(packed, bits, signed, out)
    assert np.array_equal(out.view(codes.dtype), codes)


@given(bits=st.sampled_from([4, 2]), signed=st.booleans(),
       data=st.data(), shape=st.lists(st.integers(0, 5), min_size=0, max_size=3))
def test_any_shape_is_c_order(bits, signed, data, shape):
    lo, hi = code_range(bits, signed)
    n = int(np.prod(shape))
    values = data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    codes = np.array(values, np.int16).reshape(shape)
    packed = fq.pack(codes, bits=bits, signed=signed)
    assert np.array_equal(packed, reference_pack(codes, bits))
    assert np.array_equal(fq.unpack(packed, bits=bits, count=n, signed=signed),
                          codes.reshape(-1))


def test_layouts(rng):
    codes = rng.integers(-8, 8, (6, 10)).astype(np.int8)
    for view in (codes[:, ::2], codes[::-1], codes.T, codes[1:4, 3:9]):
        assert np.array_equal(fq.pack(view), reference_pack(np.ascontiguousarray(view), 4))
    ro = codes.copy()
    ro.flags.writeable = False
    packed = fq.pack(ro)
    assert np.array_equal(fq.unpack(packed, count=ro.size).reshape(ro.shape), ro)
    assert fq.pack(np.int8(-3)).tolist() == [0x0D]  # 0-d
    assert fq.pack(np.zeros((0, 3), np.int8)).size == 0
    assert fq.pack(codes.astype(">i2")).tolist() == reference_pack(codes, 4).tolist()
    # packed input: non-contiguous and 2-D are read in C order
    p2 = fq.pack(codes).reshape(6, 5)
    assert np.array_equal(fq.unpack(p2, count=60).reshape(6, 10), codes)
    assert np.array_equal(fq.unpack(p2[::-1], count=60),
                          reference_unpack(p2[::-1].reshape(-1), 4, 60, True))
    assert fq.unpack(np.zeros(4, np.uint8), count=0).shape == (0,)


def test_bits_8_is_identity():
    codes = np.array([-128, -1, 0, 127], np.int8)
    packed = fq.pack(codes, bits=8)
    assert packed.dtype == np.uint8 and packed.tolist() == [128, 255, 0, 127]
    assert packed.base is None or not np.shares_memory(packed, codes)
    assert np.array_equal(fq.unpack(packed, bits=8, count=4), codes)
    assert fq.unpack(packed, bits=8, signed=False).tolist() == [128, 255, 0, 127]
    with pytest.raises(ValueError, match="codes"):
        fq.pack([128], bits=8)


def test_inputs_not_modified(rng):
    codes = rng.integers(-8, 8, 101).astype(np.int8)
    before = codes.copy()
    packed = fq.pack(codes)
    p_before = packed.copy()
    fq.unpack(packed, count=101)
    assert np.array_equal(codes, before) and np.array_equal(packed, p_before)


@pytest.mark.parametrize("bits,signed,bad", [
    (4, True, 8), (4, True, -9), (4, False, 16), (4, False, -1),
    (2, True, 2), (2, True, -3), (2, False, 4), (2, False, -1)])
def test_out_of_range_codes(bits, signed, bad):
    codes = np.array([0, bad, 1], np.int16)
    with pytest.raises(ValueError, match="codes"):
        fq.pack(codes, bits=bits, signed=signed)


def test_signedness_from_dtype():
    assert fq.pack(np.array([15], np.uint8)).tolist() == [15]
    with pytest.raises(ValueError, match="codes"):
        fq.pack(np.array([15], np.int8))
    with pytest.raises(ValueError, match="codes"):
        fq.pack([15])  # Python ints are signed by default
    assert fq.pack([15], signed=False).tolist() == [15]


@pytest.mark.parametrize("bits", [0, 1, 3, 5, 16, 4.0, "4", None, True])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        fq.pack([0], bits=bits)
    with pytest.raises(ValueError, match="bits"):
        fq.unpack(np.zeros(1, np.uint8), bits=bits, count=1)


def test_bad_arguments():
    with pytest.raises(TypeError, match="codes"):
        fq.pack(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="codes"):
        fq.pack(["a"])
    with pytest.raises(TypeError, match="codes"):
        fq.pack(np.array([True]))
    with pytest.raises(TypeError, match="signed"):
        fq.pack([1], signed="yes")
    with pytest.raises(ValueError, match="count"):
        fq.unpack(np.zeros(2, np.uint8), bits=4, count=5)
    with pytest.raises(ValueError, match="count"):
        fq.unpack(np.zeros(2, np.uint8), bits=2, count=9)
    with pytest.raises(ValueError, match="count"):
        fq.unpack(np.zeros(2, np.uint8), count=-1)
    with pytest.raises(TypeError, match="count"):
        fq.unpack(np.zeros(2, np.uint8), count=1.0)
    with pytest.raises(TypeError, match="packed"):
        fq.unpack(np.zeros(2, np.float32), count=1)
    with pytest.raises(ValueError, match="packed"):
        fq.unpack([256], count=1)
    with pytest.raises(TypeError, match="signed"):
        fq.unpack(np.zeros(2, np.uint8), signed=None)
    assert fq.unpack([255, 0], count=3).tolist() == [-1, -1, 0]  # list of ints is fine
    assert fq.unpack(np.array([-1], np.int8), count=2).tolist() == [-1, -1]


def test_kernel_masks_out_of_range():
    """The kernels take int8/uint8 and mask each code to its field (no range check)."""
    out = np.empty(1, np.uint8)
    kernels.pack_codes(np.array([0x1F, -1], np.int8), 4, out)
    assert out.tolist() == [0xFF]


@pytest.mark.parametrize("bits,signed", CASES)
def test_matches_onnx_tensor_packing(bits, signed, rng):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    name = ("INT" if signed else "UINT") + str(bits)
    if not hasattr(onnx.TensorProto, name):
        pytest.skip(f"onnx has no {name}")
    lo, hi = code_range(bits, signed)
    for n in (1, 2, 3, 4, 5, 17, 64):
        codes = rng.integers(lo, hi + 1, n)
        tensor = helper.make_tensor("t", getattr(onnx.TensorProto, name), [n], codes.tolist())
        onnx_bytes = np.array(tensor.int32_data, np.int64).astype(np.uint8) \
            if not tensor.raw_data else np.frombuffer(tensor.raw_data, np.uint8)
        assert np.array_equal(fq.pack(codes, bits=bits, signed=signed), onnx_bytes), n
        decoded = numpy_helper.to_array(tensor).astype(np.int64)
        got = fq.unpack(onnx_bytes, bits=bits, count=n, signed=signed)
        assert np.array_equal(got.astype(np.int64), decoded)


def test_matches_torch_quint4x2(rng):
    torch = pytest.importorskip("torch")
    codes = rng.integers(0, 16, 101)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.tensor(codes, dtype=torch.float32), 1.0, 0,
                                      torch.quint4x2)
        torch_bytes = q.int_repr().numpy()
    assert np.array_equal(fq.pack(codes, bits=4, signed=False), torch_bytes)
    assert np.array_equal(fq.unpack(torch_bytes, bits=4, count=101, signed=False), codes)
