"""OCP MX (mxfp8_e4m3, mxfp8_e5m2, mxint8, mxfp4), NVFP4 and NF4 against plain
NumPy / ml_dtypes / torch implementations of their specifications, and mxfp4 against
gguf.quants."""
import math

import ml_dtypes
import numpy as np
import pytest

import fastq as fq

MX = {"mxfp8_e4m3": ("float8_e4m3fn", 8, 448.0), "mxfp8_e5m2": ("float8_e5m2", 15, 57344.0),
      "mxfp4": ("float4_e2m1fn", 2, 6.0), "mxint8": (None, 0, 127 / 64)}


def bits(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 4: np.uint32}[a.dtype.itemsize])


def ocp_reference(x, dtype):
    """The OCP MX v1.0 rule, written plainly: per 32 elements of the last axis."""
    element, emax, fmax = MX[dtype]
    rows = x.astype(np.float32).reshape(-1, 32)
    exps, codes = [], []
    for row in rows:
        amax = float(np.max(np.abs(row)))
        e = math.floor(math.log2(amax if amax > 0 else 2.0 ** -126)) - emax
        e = min(max(e, -127), 127)
        v = row.astype(np.float64) / 2.0 ** e  # exact
        if element is None:
            codes.append(np.clip(np.rint(v * 64), -127, 127).astype(np.int8))
        else:
            codes.append(np.clip(v, -fmax, fmax).astype(getattr(ml_dtypes, element)))
        exps.append(e + 127)
    return np.array(exps, np.uint8), np.stack(codes)


def mx_inputs():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 64)).astype(np.float32) * np.exp2(
        rng.integers(-30, 30, (8, 1))).astype(np.float32)
    x[0, :32] = 0  # all-zero block
    x[1, :32] = np.float32(1e-40) * rng.standard_normal(32).astype(np.float32)  # subnormals
    x[2, :32] = np.nextafter(np.float32(4), np.float32(0)) * np.sign(rng.standard_normal(32))
    x[2, 0] = np.nextafter(np.float32(4), np.float32(0))  # amax just below a power of two
    x[3, :32] = 4.0 * np.float32(rng.integers(-16, 17, 32)) / 8  # ties of every format
    x[4, :32] = np.float32(3e38) * rng.uniform(-1, 1, 32).astype(np.float32)
    x[5, :32] = np.float32(2.0 ** -140)
    return x


@pytest.mark.parametrize("dtype", list(MX))
def test_mx_follows_the_ocp_rule(dtype):
    x = mx_inputs()
    qt = fq.quantize(x, dtype)
    e, codes = ocp_reference(x, dtype)
    assert qt.scale.dtype == ml_dtypes.float8_e8m0fnu and qt.scale.shape == (8, 2)
    assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), e)
    assert np.array_equal(bits(qt.codes()).reshape(-1, 32), bits(codes))
    values = codes.astype(np.float32) / (64 if dtype == "mxint8" else 1)
    want = (values.astype(np.float64) * np.exp2(e.astype(np.float64) - 127)[:, None])
    got = fq.dequantize(qt)
    assert np.array_equal(got.reshape(-1, 32), want.astype(np.float32))
    assert qt.bits_per_element == (4.25 if dtype == "mxfp4" else 8.25)


def test_mx_last_axis_must_hold_whole_blocks():
    for dtype in MX:
        with pytest.raises(ValueError, match=r"x's last dimension.*32"):
            fq.quantize(np.ones((2, 48), np.float32), dtype)
    with pytest.raises(ValueError, match="16"):
        fq.quantize(np.ones(40, np.float32), "nvfp4")
    with pytest.raises(ValueError, match="NaN"):
        fq.quantize(np.full(32, np.nan, np.float32), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="granularity"):
        fq.quantize(np.ones(32, np.float32), "mxfp4", granularity=fq.PerChannel(0))


def test_mxfp4_bytes_are_ggml_mxfp4():
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize, quantize
    T = gguf.GGMLQuantizationType.MXFP4
    rng = np.random.default_rng(8)
    x = np.concatenate([mx_inputs(), rng.standard_normal((8, 64)).astype(np.float32)])
    qt = fq.quantize(x, "mxfp4")
    assert qt.data.dtype == np.uint8 and qt.data.size == x.size // 32 * 17
    mine = fq.dequantize(qt)
    assert np.array_equal(bits(dequantize(qt.data.reshape(x.shape[0], -1), T)), bits(mine))
    # gguf's own quantizer agrees on data without ties or amax just below a power of two
    y = rng.standard_normal((16, 256)).astype(np.float32)
    theirs = dequantize(quantize(y, T), T)
    assert np.array_equal(theirs, fq.dequantize(fq.quantize(y, "mxfp4")))
    # ... and differs on ties (0.75 between 0.5 and 1: gguf takes the lower entry, OCP
    # the even one) and below E8M0's range (gguf's exponent byte wraps around)
    t = np.float32([0.75] * 31 + [6.0])
    assert quantize(t, T)[1] == 0x11 and fq.quantize(t, "mxfp4").data[1] == 0x22
    z = np.full(32, 1e-39, np.float32)
    assert quantize(z, T)[0] == 251 and fq.quantize(z, "mxfp4").data[0] == 0


def torchao_nvfp4(x):
    """torchao's ``_nvfp4_quantize`` with a per-tensor scale, in torch (CPU)."""
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x).float()
    amax = t.abs().max()
    per_tensor = amax / (448.0 * 6.0)
    blocks = t.reshape(-1, 16)
    block_scale = blocks.abs().amax(dim=-1) / 6.0
    scaled = torch.clamp(block_scale / per_tensor, min=2.0 ** -6, max=448.0)
    s8 = scaled.to(torch.float8_e4m3fn)
    total = per_tensor * s8.to(torch.float32)
    data = torch.clamp(blocks / total.unsqueeze(-1), -6.0, 6.0).numpy()
    return (np.float32(per_tensor.item()), s8.view(torch.uint8).numpy(),
            data.astype(ml_dtypes.float4_e2m1fn))


def test_nvfp4_follows_torchao():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 64)).astype(np.float32) * np.exp2(
        rng.integers(-6, 6, (4, 1))).astype(np.float32)
    x[0, :16] = 0
    x[1, 16:32] = 1e-6
    qt = fq.quantize(x, "nvfp4")
    ts, s8, data = torchao_nvfp4(x)
    assert qt.tensor_scale == ts and qt.tensor_scale.dtype == np.float32
    assert qt.scale.dtype == ml_dtypes.float8_e4m3fn and qt.scale.shape == (4, 4)
    assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), s8)
    assert np.array_equal(bits(qt.codes()).reshape(-1, 16), bits(data))
    total = ts * s8.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    want = data.astype(np.float32) * total[:, None]
    assert np.array_equal(fq.dequantize(qt).reshape(-1, 16), want)
    assert qt.bits_per_element == 4 + 8 / 16 + 32 / x.size
    z = fq.quantize(np.zeros((2, 16), np.float32), "nvfp4")
    assert z.tensor_scale == 1 and not fq.dequantize(z).any()


@pytest.mark.parametrize("shape", [(1, 16 * k) for k in range(1, 41)] + [(4099, 32)],
                         ids=lambda s: f"{s[0] * s[1] // 16} blocks")
def test_nvfp4_every_block_count(shape):
    """Each block's amax comes from the first pass (eight blocks at a time, then one by
    one) and is read back by the second from the bytes its codes then take: every
    count of blocks up to 40 (tiles of 16, groups of 8 and the blocks after them), and
    a parallel input whose last chunk ends in a partial group.  Each block's largest
    magnitude sits at another position, with either sign, every position in turn."""
    rng = np.random.default_rng(shape[1])
    for shift in range(16) if shape[0] == 1 else (0,):
        x = rng.standard_normal(shape).astype(np.float32)
        rows = x.reshape(-1, 16)
        at = np.arange(rows.shape[0])
        rows[at, (at + shift) % 16] = np.where(at % 3 == 1, -1, 1) * (4 + at % 7)
        rows[4::5] = 0  # (all-zero blocks: the smallest scale)
        qt = fq.quantize(x, "nvfp4")
        ts, s8, data = torchao_nvfp4(x)
        assert qt.tensor_scale == ts
        assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), s8)
        assert np.array_equal(bits(qt.codes()).reshape(-1, 16), bits(data))


def nf4_reference(x, block=64):
    from fastq.ops.formats.nf4 import TABLE
    flat = x.astype(np.float32).reshape(-1)
    absmax, codes = [], []
    for i in range(0, flat.size, block):
        b = flat[i:i + block]
        a = np.float32(np.max(np.abs(b)))
        normed = b / (a if a > 0 else np.float32(1))
        d = np.abs(normed.astype(np.float64)[:, None] - TABLE.astype(np.float64)[None])
        codes.append(np.argmin(d, axis=1))  # (the first minimum: the lower index)
        absmax.append(a)
    return np.array(absmax, np.float32), np.concatenate(codes).astype(np.uint8)


def test_nf4_table_rule_and_partial_block():
    from fastq.ops.formats.nf4 import TABLE
    rng = np.random.default_rng(10)
    x = rng.standard_normal((7, 30)).astype(np.float32)  # 210 = 3 blocks + 18
    x[0, :] = 0
    mid = (TABLE[9].astype(np.float64) + TABLE[10]) / 2  # an exact tie (with absmax 1)
    x[6, 12:] = 0.01  # the partial last block: absmax 1, an exact tie
    x[6, 12:16] = [1.0, np.float32(mid), -np.float32(mid), 0.0]
    qt = fq.quantize(x, "nf4")
    absmax, codes = nf4_reference(x)
    assert qt.scale.dtype == np.float32 and qt.scale.shape == (4,)
    assert np.array_equal(qt.scale, absmax)
    assert np.array_equal(qt.codes().reshape(-1), codes) and qt.codes().shape == x.shape
    assert qt.codes()[6, 13] == 9
    assert np.array_equal(fq.dequantize(qt).reshape(-1),
                          TABLE[codes] * np.repeat(absmax, 64)[:x.size])
    assert qt.bits_per_element == 8 * (105 + 16) / 210
    big = fq.quantize(rng.standard_normal(4096).astype(np.float32), "nf4")
    assert big.bits_per_element == 4.5
    q2 = fq.quantize(x, "nf4", block_size=32)
    a2, c2 = nf4_reference(x, 32)
    assert np.array_equal(q2.scale, a2) and np.array_equal(q2.codes().reshape(-1), c2)
    assert np.array_equal(fq.dequantize(q2).reshape(-1),
                          TABLE[c2] * np.repeat(a2, 32)[:x.size])
    with pytest.raises(ValueError, match="block_size"):
        fq.quantize(x, "nf4", block_size=0)


def test_nf4_matches_bitsandbytes_when_installed():
    bnb = pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(11).standard_normal(1000).astype(np.float32)
    q, state = bnb.functional.quantize_4bit(torch.from_numpy(x), quant_type="nf4",
                                            blocksize=64)
    qt = fq.quantize(x, "nf4")
    assert np.array_equal(qt.scale, state.absmax.numpy())
    packed = q.numpy().reshape(-1)
    theirs = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)[:x.size]
    assert np.array_equal(qt.codes(), theirs)


@pytest.mark.parametrize("dtype", ["mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxfp4", "nvfp4", "nf4"])
def test_layouts_dtypes_and_empty_inputs(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    want = fq.dequantize(fq.quantize(x, dtype))
    # float64 / float16 inputs are rounded to float32 first; strided input as its copy
    x64 = x.astype(np.float64)
    assert np.array_equal(fq.dequantize(fq.quantize(x64.astype(np.float32), dtype)), want)
    wide = np.zeros((3, 128), np.float32)
    wide[:, ::2] = x
    assert np.array_equal(fq.dequantize(fq.quantize(wide[:, ::2], dtype)), want)
    assert fq.dequantize(fq.quantize(x[::-1], dtype)).shape == (3, 64)
    empty = fq.quantize(np.zeros((0, 64), np.float32), dtype)
    assert fq.dequantize(empty).shape == (0, 64) and empty.codes().shape == (0, 64)
    zeros = fq.quantize(np.zeros((2, 32), np.float32), dtype)
    assert not fq.dequantize(zeros).any()
    assert repr(zeros).startswith("QTensor(dtype=")
