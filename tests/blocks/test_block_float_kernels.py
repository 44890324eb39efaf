"""The one-pass kernels of OCP MX, NVFP4 and NF4 against plain NumPy / ml_dtypes
statements of their rules: every element code under every E8M0 scale for
dequantization, inputs large enough for the parallel path, and NF4 against
bitsandbytes (where installed)."""
import math

import ml_dtypes
import numpy as np
import pytest

import fastq as fq
from fastq.ops.formats.nf4 import MID32, TABLE

from test_block_floats import ocp_reference, torchao_nvfp4

ELEMENT = {"mxfp8_e4m3": ml_dtypes.float8_e4m3fn, "mxfp8_e5m2": ml_dtypes.float8_e5m2}


def power(e):
    """float32 ``2**(e - 127)`` of E8M0 codes (inf for 0xFF, as float32 2**128)."""
    with np.errstate(over="ignore"):
        return np.ldexp(np.float32(1), e.astype(np.int32) - 127).astype(np.float32)


@pytest.mark.parametrize("dtype", ["mxfp8_e4m3", "mxfp8_e5m2", "mxint8"])
def test_mx_dequantize_every_code_under_every_scale(dtype):
    codes = (np.arange(2048 * 32) % 256).astype(np.uint8).reshape(-1, 32)
    e = np.arange(2048) // 8  # (8 blocks of every E8M0 code hold every element code)
    qt = fq.quantize(np.ones((codes.shape[0], 32), np.float32), dtype)
    data = codes.view(np.int8) if dtype == "mxint8" else codes.view(ELEMENT[dtype])
    qt.data, qt.scale = data, e.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu).reshape(-1, 1)
    values = (data.astype(np.float32) / 64 if dtype == "mxint8"
              else data.astype(np.float32))
    with np.errstate(invalid="ignore", over="ignore"):
        want = values * power(e)[:, None]
    assert np.array_equal(fq.dequantize(qt).view(np.uint32), want.view(np.uint32))


def test_mxfp4_and_nvfp4_dequantize_every_code():
    rng = np.random.default_rng(1)
    nibbles = rng.integers(0, 16, (4096, 32)).astype(np.uint8)
    nibbles[:, :16] = np.arange(16)  # every code in every block
    e = np.arange(4096) % 256
    qt = fq.quantize(np.ones((4096, 32), np.float32), "mxfp4")
    rows = np.concatenate([e.astype(np.uint8)[:, None],
                           nibbles[:, :16] | (nibbles[:, 16:] << 4)], axis=1)
    qt.data = rows.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        want = nibbles.view(ml_dtypes.float4_e2m1fn).astype(np.float32) * power(e)[:, None]
    want += np.float32(0)  # (GGML: the code -0 decodes to +0)
    assert np.array_equal(fq.dequantize(qt).view(np.uint32), want.view(np.uint32))
    x = rng.standard_normal((512, 256)).astype(np.float32)
    x[0, :16] = -0.0
    qt = fq.quantize(x, "nvfp4")
    s = qt.scale.reshape(-1).astype(np.float32)
    values = qt.codes().astype(np.float32).reshape(-1, 16)
    want = values * (np.float32(qt.tensor_scale) * s)[:, None]
    assert np.array_equal(fq.dequantize(qt).reshape(-1, 16).view(np.uint32),
                          want.view(np.uint32))


def wide_inputs(rows):
    """Blocks over the whole float32 range, ties of every element format, zeros."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((rows, 64)).astype(np.float32) * np.exp2(
        rng.integers(-140, 120, (rows, 1))).astype(np.float32)
    ties = np.float32(2.0) ** rng.integers(-20, 20, (rows // 4, 1)).astype(np.float32)
    x[::4] = ties * (rng.integers(-512, 513, (rows // 4, 64)) / np.float32(32))
    x[1::9] = 0
    return x


@pytest.mark.parametrize("dtype", ["mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxfp4"])
def test_mx_parallel_path_follows_the_ocp_rule(dtype):
    x = wide_inputs(2048)  # 131072 elements: threads
    qt = fq.quantize(x, dtype)
    e, codes = ocp_reference(x, dtype)
    assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), e)
    got = qt.codes().reshape(-1, 32)
    assert np.array_equal(got.view(np.uint8), codes.view(np.uint8))


def test_nvfp4_parallel_path_and_underflowing_tensor_scale():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1024, 128)).astype(np.float32) * np.exp2(
        rng.integers(-12, 12, (1024, 1))).astype(np.float32)
    for y in (x, np.full((2, 16), 1.4e-45, np.float32)):  # (the second: scale 0 -> NaN)
        qt = fq.quantize(y, "nvfp4")
        with np.errstate(all="ignore"):
            ts, s8, data = torchao_nvfp4(y)
        assert np.float32(qt.tensor_scale) == ts or (ts == 0 and qt.tensor_scale == 0)
        assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), s8)
        if ts:  # (torch and NumPy disagree on the sign of 0/0's NaN)
            assert np.array_equal(qt.codes().view(np.uint8).reshape(-1, 16),
                                  data.view(np.uint8))


def nf4_rule(flat, block):
    absmax = np.array([np.abs(flat[i:i + block]).max(initial=0)
                       for i in range(0, flat.size, block)], np.float32)
    a = np.repeat(np.where(absmax > 0, absmax, np.float32(1)), block)[:flat.size]
    v = (flat / a).astype(np.float32)
    return absmax, (v[:, None] > MID32[None]).sum(axis=1).astype(np.uint8)


@pytest.mark.parametrize("n,block", [(1, 64), (65, 64), (1001, 2), (200001, 64),
                                     (131073, 7), (70000, 4096)])
def test_nf4_sizes_and_block_sizes(n, block):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    qt = fq.quantize(x, "nf4", block_size=block)
    absmax, codes = nf4_rule(x, block)
    assert np.array_equal(qt.scale, absmax)
    assert np.array_equal(qt.codes().reshape(-1), codes)
    want = TABLE[codes] * np.repeat(absmax, block)[:n]
    assert np.array_equal(fq.dequantize(qt).reshape(-1), want)
    with pytest.raises(ValueError, match="NaN or inf"):
        fq.quantize(np.where(np.arange(n) == n // 2, np.inf, x), "nf4", block_size=block)


def test_nf4_against_bitsandbytes_on_the_cpu():
    """bitsandbytes' CPU ``quantize_4bit`` (its ``default`` kernel) scales by the float32
    reciprocal ``x * (1 / absmax)`` and compares with float32-rounded midpoints; fastq
    divides (``x / absmax``) and compares with the exact midpoints.  The absmax is the
    same; the codes differ only where those two roundings part (a few per million)."""
    bnb = pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(11).standard_normal(1 << 18).astype(np.float32)
    q, state = bnb.functional.quantize_4bit(torch.from_numpy(x), quant_type="nf4",
                                            blocksize=64)
    qt = fq.quantize(x, "nf4")
    assert np.array_equal(qt.scale, state.absmax.numpy())
    packed = q.numpy().reshape(-1)
    theirs = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)  # (first: high)
    a = np.repeat(qt.scale, 64)
    scaled = np.clip(x * (np.float32(1) / a), -1, 1)  # bitsandbytes' steps
    bounds = (TABLE[:-1] + TABLE[1:]) / np.float32(2)  # (float32 midpoints)
    assert np.array_equal(theirs, np.searchsorted(bounds, scaled, side="left"))
    mine = qt.codes().reshape(-1)
    differ = mine != theirs
    assert differ.sum() <= math.ceil(x.size * 1e-4)
    assert np.array_equal(mine, nf4_rule(x, 64)[1])


def test_block_vectors_tiles_tails_and_extreme_scales():
    """Block counts that leave partial groups of eight and partial tiles (the vector
    scale path takes eight blocks at a time, the rest one by one), with the largest and
    smallest E8M0 scales in one group of eight."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 32 * 37)).astype(np.float32) * np.exp2(
        rng.integers(-150, 125, (3, 37)).repeat(32, axis=1)).astype(np.float32)
    x[0, :32] = np.float32(3e38) * rng.uniform(-1, 1, 32).astype(np.float32)  # e = 127
    x[0, 32:64] = np.float32(2.0 ** -140) * rng.integers(-3, 4, 32)  # e = -127
    x[0, 64:96] = 0
    x[1, 32:64] = np.float32(2.0 ** 127)  # (mxint8: e = 127, code 254 exactly)
    for dtype in ("mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxfp4"):
        qt = fq.quantize(x, dtype)
        e, codes = ocp_reference(x, dtype)
        assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), e), dtype
        assert np.array_equal(qt.codes().reshape(-1, 32).view(np.uint8),
                              codes.view(np.uint8)), dtype
    y = rng.standard_normal((5, 16 * 13)).astype(np.float32)  # 65 NVFP4 blocks: odd
    y[2, 16:32] = 0
    qt = fq.quantize(y, "nvfp4")
    ts, s8, data = torchao_nvfp4(y)
    assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), s8)
    assert np.array_equal(qt.codes().view(np.uint8).reshape(-1, 16), data.view(np.uint8))


@pytest.mark.parametrize("dtype", ["mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxfp4", "nvfp4"])
def test_block_vectors_find_nan_and_inf_inside_a_group(dtype):
    x = np.ones((4, 128), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        x[2, 77] = bad  # (block 21 of 32: inside the third group of eight)
        with pytest.raises(ValueError, match="NaN or inf"):
            fq.quantize(x, dtype)


ELEMENT_MAX = {"mxfp8_e4m3": ("float8_e4m3fn", 8), "mxfp8_e5m2": ("float8_e5m2", 15),
               "mxfp4": ("float4_e2m1fn", 2), "mxint8": (None, 0)}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", list(ELEMENT_MAX))
def test_block_vector_element_codec_on_whole_binades(dtype):
    """Every float32 of the binades around the element format's subnormal boundary, its
    top and a middle one (both signs, every mantissa), as the 31 free lanes of blocks
    whose lead element ``2**emax`` fixes ``e = 0``: the codes equal ml_dtypes' cast of
    the clipped value (MXINT8: ``clip(rint(64 v), -127, 127)``)."""
    element, emax = ELEMENT_MAX[dtype]
    if element:
        f = ml_dtypes.finfo(getattr(ml_dtypes, element))
        lows = [int(np.log2(float(f.smallest_subnormal))) + k for k in (-2, -1, 0, 1)]
        fmax = float(f.max)
    else:
        lows, fmax = [-8, -7, -1], 127 / 64
    for binade in sorted(set(lows + [int(np.log2(fmax)), -1])):
        mant = np.arange(1 << 23, dtype=np.uint32)
        bits = np.concatenate([((binade + 127) << 23) | mant,
                               ((binade + 127) << 23) | mant | np.uint32(1 << 31)])
        v = bits.view(np.float32)
        blocks = np.empty((v.size // 31 + 1, 32), np.float32)
        blocks[:, 0] = np.float32(2.0 ** emax)
        free = np.zeros(blocks.shape[0] * 31, np.float32)
        free[:v.size] = v
        blocks[:, 1:] = free.reshape(-1, 31)
        qt = fq.quantize(blocks, dtype)
        assert (qt.scale.view(np.uint8) == 127).all()
        got = qt.codes().reshape(-1, 32)[:, 1:].reshape(-1)[:v.size].view(np.uint8)
        if element:
            want = np.clip(v, -fmax, fmax).astype(getattr(ml_dtypes, element)).view(np.uint8)
        else:
            want = np.clip(np.rint(v.astype(np.float64) * 64), -127, 127).astype(
                np.int8).view(np.uint8)
        assert np.array_equal(got, want), (dtype, binade)


@pytest.mark.parametrize("nblocks,nchunks", [(16384, 64), (9600, 18), (1, 4), (13, 64),
                                             (32768, 64), (100003, 7)])
def test_block_chunks_are_even_and_cover_every_block(nblocks, nchunks):
    """The parallel block-format passes split their blocks evenly over the chunks, in
    groups of 8 blocks (NF4 of 1M elements is 16K blocks in 64 chunks: rounding each
    chunk up to 512 blocks left half the chunks, and so one of two threads, idle)."""
    from fastq.kernels.cpu.parallel import block_bounds
    bounds = [block_bounds(nblocks, c, nchunks) for c in range(nchunks)]
    assert bounds[0][0] == 0 and bounds[-1][1] == nblocks
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(start % 8 == 0 and stop >= start for start, stop in bounds)
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 8 + nblocks % 8


@pytest.mark.parametrize("dtype", ["mxfp8_e4m3", "mxfp4", "nf4"])
def test_block_formats_on_threads_at_uneven_chunk_sizes(dtype):
    """75 rows of 4096: 9600 blocks of 32 in 18 chunks (533 a chunk) and 4800 NF4 blocks:
    the parallel split's codes are the rule's."""
    x = np.random.default_rng(75).standard_normal((75, 4096)).astype(np.float32)
    qt = fq.quantize(x, dtype)
    if dtype == "nf4":
        absmax, codes = nf4_rule(x.reshape(-1), 64)
        assert np.array_equal(qt.scale, absmax)
        assert np.array_equal(qt.codes().reshape(-1), codes)
        want = TABLE[codes] * np.repeat(absmax, 64)
        assert np.array_equal(fq.dequantize(qt).reshape(-1), want)
        return
    e, codes = ocp_reference(x, dtype)
    assert np.array_equal(qt.scale.view(np.uint8).reshape(-1), e)
    assert np.array_equal(qt.codes().reshape(-1, 32).view(np.uint8), codes.view(np.uint8))
