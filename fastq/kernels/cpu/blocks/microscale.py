"""Kernels of the microscaling formats (OCP MX, NVFP4): one pass per block over a flat
float32 array, blocks of 32 (MX) or 16 (NVFP4) consecutive elements (CPU).

Quantization reads each block once: its largest magnitude (an integer max of the
float32 magnitude bits: the float order for finite values, inf and NaN at or above
``0x7F800000``), the block scale from it, then the element codes, written once in their
final layout.  Blocks are vector values (``fastq.kernels.cpu.blocks.wide``), in tiles
of ``TILE`` blocks: the tile's scales first (eight blocks at a time in vector lanes),
then its codes.  The element codecs:

- float elements (float8, E2M1): the scaled value ``x * 2**-k`` (exact for a
  power-of-two scale; a product below float32's normals is rounded once, as the
  quotient would be) or ``x / total`` (NVFP4, a true division), rounded half to even
  with saturation as ``_small_float`` states it for one element, in float arithmetic
  on full-width lanes (the result equals the generic integer rounding of
  ``fastq.kernels.cpu.cast``);
- integer elements (MXINT8): ``clip(rint((x * 2**-e) * 64), -127, 127)``.

Dequantization rebuilds element values arithmetically, with no table lookup per element:
a float code's magnitude bits shifted into a float32's exponent and mantissa fields read
as that float32 times ``2**(127 - bias)`` (``up``), exactly (subnormal codes land on
float32 subnormals, which the product scales exactly), then times the block scale.  A
block holding a special code (inf, NaN) is redone from the decode ``table``.  Large
aligned outputs go out by non-temporal stores straight from the vector registers.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ....core import formats as F
from ..floatbits.rounding import rounded
from ..parallel import BLOCK, block_bounds, chunk_bounds, launch
from .wide import (e8m0_scales, float_codes, float_values, int_codes, int_values, literal,
                   nvfp4_scales, prefetch_lines, scalar_as, splat, store_values, top_bits,
                   values_ok, vector_at)
from ..word import (FP_NEAREST_EVEN, add, address, as_bits, as_float, band, bor, finish_stream,
                    local_block, shr, sub, swap_fp_control)

MASK, INF_BITS = np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)
# Blocks whose scales are found before their codes (see _mx_slice); the input of the
# next tile is prefetched: the hardware prefetcher alone left the compute-heavy block
# loops waiting on memory (16M float32, one thread: mxfp8 9.0 -> 7.8 ms, nearer
# distances measured best)
TILE = 16


@njit(cache=True, nogil=True, inline="always")
def _block_top(x, base, size):
    """The largest float32 magnitude bits of ``x[base:base + size]``."""
    top, at = np.uint32(0), np.uint64(base)
    for i in range(size):  # (an unsigned index: no negative-index wrap, which would
        top = max(top, band(as_bits(x[at + np.uint64(i)]), MASK))  # gather the loads)
    return top


@njit(cache=True, nogil=True, inline="always")
def _floor_log2(top):
    """``floor(log2(v))`` of the positive finite float32 bits ``top`` (exact; subnormal
    ``m * 2**-149``: ``-150 +`` the bit length of ``m``); -126 for 0 (an all-zero block
    reads as the smallest normal, as OCP's reference library does)."""
    if top >= np.uint32(0x00800000):
        return np.int32(top >> np.uint32(23)) - 127
    if top == 0:
        return np.int32(-126)
    flog, m = np.int32(-150), top
    while m:
        m >>= np.uint32(1)
        flog += 1
    return flog


@njit(cache=True, nogil=True, inline="always")
def _power_bits(k):
    """float32 bits of ``2**k`` for ``-149 <= k <= 127``."""
    return np.uint32((k + 127) << 23) if k >= -126 else np.uint32(1 << (k + 149))


@njit(cache=True, nogil=True, inline="always")
def _small_float(v, norm, magic, fmax, low, shift, sign_shift, sign_bit):
    """The code of the finite float32 ``v`` in a small float format (round half to even,
    saturating), in float arithmetic that vectorizes in full-width lanes: with ``a =
    min(|v|, fmax)`` (``fmax`` the largest finite value) and ``M = max(2**floor(log2 a),
    norm) * magic`` (``norm`` the format's smallest normal, ``magic = 2**(23 - m)``),
    the sum ``a + M`` rounds ``a`` to the format's spacing there, half to even, and its
    bits less ``M``'s count the steps ``k``; the code is ``k`` plus the exponent steps of
    ``M`` above ``low = bits(norm * magic)``, shifted into place (``shift = 23 - m``).
    No float32 subnormal is made (they are slow on many CPUs).  Sign: the bit of ``v``."""
    b = as_bits(v)
    a = min(as_float(band(b, MASK)), fmax)
    big = max(as_float(band(as_bits(a), INF_BITS)), norm) * magic
    big_bits = as_bits(big)
    code = add(sub(as_bits(a + big), big_bits), shr(sub(big_bits, low), shift))
    return bor(code, band(shr(b, sign_shift), sign_bit))


@njit(cache=True, nogil=True, inline="always")
def _e8m0(top, emax):
    """The E8M0 code of a block whose largest magnitude bits are ``top``: ``clip(floor(
    log2(amax)) - emax, -127, 127) + 127``, or 0xFF for a block holding inf or NaN."""
    if top >= INF_BITS:
        return np.int32(255)
    return min(max(_floor_log2(top) - emax, np.int32(-127)), np.int32(127)) + 127


@njit(cache=True, nogil=True)
def _mx_slice(x, emax, shift, fp, up, codes, exps, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (rint, and no flush to zero)
    qmax, fixed = np.float32(127), as_float(_power_bits(shift))
    scale = local_block(x, TILE)
    # (whole blocks as vector values, wide.py: no loop over a block's elements)
    for first in range(0, exps.size, TILE):
        nb = min(TILE, exps.size - first)
        if first + 2 * TILE <= exps.size:  # (see TILE)
            prefetch_lines(x, (first + TILE) * 32, 2048)  # (TILE blocks)
        # the scales of a tile of blocks first, then their codes: each block's scale
        # is a long chain of dependent steps (its amax reduction, the exponent, the
        # scale back in a vector register), which the CPU overlaps across the blocks
        # of the tile, where one block after another would wait on each chain in turn
        # x / 2**e as x * 2**-e: the same rounded number (a power of two float32 holds
        # for -127 <= -e <= 127; code 0xFF: any scale, its codes unused); eight blocks
        # at a time in vector lanes, the rest one by one
        for g in range(0, nb - 7, 8):
            e8m0_scales(x, (first + g) * 32, 32, emax, exps, first + g, scale, g)
        for r in range(nb // 8 * 8, nb):
            code = _e8m0(top_bits(x, (first + r) * 32, 32), emax)
            exps[first + r] = code
            scale[r] = as_float(_power_bits(127 - min(code, np.int32(254))))
        for r in range(nb):
            base = (first + r) * 32
            if up[0] == 0:  # integer elements: (x * 2**-e) * 2**shift (see mx_rows)
                int_codes(x, base, 32, scale[r], fixed, qmax, codes, base)
            else:
                float_codes(x, base, 32, scale[r], scale[r], False, fp, up, codes, base, 0)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _mx_parallel(x, emax, shift, fp, up, codes, exps, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(exps.size, c, nchunks)
        _mx_slice(x[start * 32:stop * 32], emax, shift, fp, up, codes[start * 32:stop * 32],
                  exps[start:stop], stream)


def mx_rows(x, emax, shift, fp, up, codes, exps):
    """OCP MX in one pass over the flat float32 ``x`` (blocks of 32): E8M0 exponent
    codes into ``exps`` (uint8; 0xFF: inf or NaN in the block, its codes meaningless),
    element codes into ``codes`` (uint8, ``x``'s size).  Float elements: ``fp = [norm,
    magic, fmax]`` (float32) and ``up = [shift, sign_shift, sign_bit]`` (uint32) of
    ``_small_float``; ``up[0]`` 0: MXINT8, ``clip(rint(x / 2**(e - 6)), -127, 127)``
    (``shift`` 6: the 1.6 fixed point; else 0)."""
    launch(_mx_slice, _mx_parallel, x, codes,
           (x, np.int32(emax), np.int32(shift), fp, up, codes, exps))


@njit(cache=True, nogil=True)
def _mxfp4_slice(x, fp, up, out, exps, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))
    scale, heads = local_block(x, TILE), local_block(out, TILE)
    rows = out.size // 17
    for first in range(0, rows, TILE):  # (a tile's scales, then its codes: _mx_slice)
        nb = min(TILE, rows - first)
        if first + 2 * TILE <= rows:
            prefetch_lines(x, (first + TILE) * 32, 2048)  # (TILE blocks)
        for g in range(0, nb - 7, 8):  # (eight at a time, as _mx_slice)
            e8m0_scales(x, (first + g) * 32, 32, np.int32(2), heads, g, scale, g)
        for r in range(nb // 8 * 8, nb):
            code = _e8m0(top_bits(x, (first + r) * 32, 32), np.int32(2))
            heads[r] = code
            scale[r] = as_float(_power_bits(127 - min(code, np.int32(254))))
        for r in range(nb):
            out[(first + r) * 17] = exps[first + r] = heads[r]
        for r in range(nb):  # (codes j and j + 16 into byte j: pack mode 1)
            float_codes(x, (first + r) * 32, 32, scale[r], scale[r], False, fp, up, out,
                        (first + r) * 17 + 1, 1)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True)
def _mxfp4_parallel(x, fp, up, out, exps, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(out.size // 17, c, nchunks)
        _mxfp4_slice(x[start * 32:stop * 32], fp, up, out[start * 17:stop * 17],
                     exps[start:stop], stream)


def ggml_mxfp4(x, fp, up, out, exps):
    """GGML ``block_mxfp4`` rows (17 bytes each, flat ``out``) of the flat float32 ``x``:
    row ``r`` = ``[e, c[j] | c[j +
    16] << 4 for j < 16]``, ``e`` the OCP E8M0 exponent (0xFF: inf or NaN in the block,
    the rest of that row meaningless), ``c`` the E2M1 codes of ``x * 2**-(e - 127)``
    (``fp``, ``up``: E2M1's parameters of ``_small_float``); the ``e`` of each row into
    ``exps`` too (uint8, one per row: the scales, without a strided pass over the rows)."""
    launch(_mxfp4_slice, _mxfp4_parallel, x, out, (x, fp, up, out, exps))


@njit(cache=True, nogil=True)
def _abs_max_slice(x, top, stream):
    best = np.uint32(0)
    for start in range(0, x.size, BLOCK):
        best = max(best, _block_top(x, start, min(BLOCK, x.size - start)))
    top[0] = best


@njit(parallel=True, cache=True, nogil=True)
def _abs_max_parallel(x, top, nchunks, stream):
    for c in prange(nchunks):
        start, stop = chunk_bounds(x.size, c, nchunks)
        _abs_max_slice(x[start:stop], top[c:c + 1], stream)


def abs_max_bits(x, top):
    """``top[c]``: the largest float32 magnitude bits of chunk ``c`` of the flat ``x``
    (``top`` zeroed beforehand, one entry per chunk at most ``MAX_CHUNKS``)."""
    launch(_abs_max_slice, _abs_max_parallel, x, top, (x, top))


# (error_model "numpy": a float division without Numba's zero check, which would keep
# the element loop from vectorizing; the divisor is positive)
@njit(cache=True, nogil=True, error_model="numpy")
def _nvfp4_slice(x, tensor_scale, p8, scale_table, fp, up, scales, out, stream):
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))
    s, half_m1, rebias = p8[F.E_SHIFT], p8[F.E_HALF_M1], p8[F.E_REBIAS]
    ovf_code, norm_min = p8[F.E_OVF_CODE], p8[F.E_NORM_MIN]
    total = local_block(x, TILE)
    for first in range(0, scales.size, TILE):  # (a tile's scales, then its codes)
        nb = min(TILE, scales.size - first)
        if first + 2 * TILE <= scales.size:
            prefetch_lines(x, (first + TILE) * 16, 1024)  # (TILE blocks)
        for g in range(0, nb - 7, 8):  # (eight blocks at a time in vector lanes)
            nvfp4_scales(x, (first + g) * 16, tensor_scale, scales, first + g, total, g)
        for r in range(nb // 8 * 8, nb):
            block_max = as_float(top_bits(x, (first + r) * 16, 16))
            # the float32 steps of torchao's recipe, in its order
            v = min(max((block_max / np.float32(6)) / tensor_scale, np.float32(2.0 ** -6)),
                    np.float32(448))
            # (v is a normal E4M3 magnitude: the integer rounding alone is exact)
            s8 = rounded(as_bits(v), s, half_m1, rebias, ovf_code, norm_min, np.float32(1),
                         True, False)
            scales[first + r] = s8
            total[r] = tensor_scale * scale_table[s8]
        # (a true division; codes 2j and 2j + 1 into byte j; two blocks a call)
        for r in range(0, nb - 1, 2):
            float_codes(x, (first + r) * 16, 32, total[r], total[r + 1], True, fp, up, out,
                        (first + r) * 8, 2)
        if nb % 2:
            r = nb - 1
            float_codes(x, (first + r) * 16, 16, total[r], total[r], True, fp, up, out,
                        (first + r) * 8, 2)
    swap_fp_control(saved)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _nvfp4_parallel(x, tensor_scale, p8, scale_table, fp, up, scales, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(scales.size, c, nchunks)
        _nvfp4_slice(x[start * 16:stop * 16], tensor_scale, p8, scale_table, fp, up,
                     scales[start:stop], out[start * 8:stop * 8], stream)


def nvfp4(x, tensor_scale, params8, scale_table, fp, up, scales, out):
    """NVFP4 of the flat finite float32 ``x`` with the positive float32 ``tensor_scale``:
    per block of 16, the E4M3 scale code (``params8``: float32 -> E4M3 encode
    parameters; ``scale_table``: E4M3 code -> float32) into ``scales``, and the E2M1
    codes of ``x / (tensor_scale * s)``, packed two per byte, the first element in the low
    nibble, into ``out``."""
    launch(_nvfp4_slice, _nvfp4_parallel, x, out,
           (x, np.float32(tensor_scale), params8, scale_table, fp, up, scales, out))


@njit(cache=True, nogil=True)
def _mx_decode_slice(codes, exps, shift, up, special_min, table, out, stream):
    # (non-temporal stores straight from the vector registers: blocks of 32 float32
    # start on 128-byte boundaries of an aligned out)
    direct = stream and address(out, 0) % 64 == 0
    for r in range(exps.size):
        scale = as_float(_power_bits(np.int32(exps[r]) - 127))  # (255: inf)
        base = r * 32
        if shift == 0:  # int8 codes
            if direct:
                int_values(codes, base, 32, up, scale, out, base, True)
            else:
                int_values(codes, base, 32, up, scale, out, base, False)
            continue
        if direct:
            special = float_values(codes, base, 32, shift, up, scale, special_min, out, base,
                                   True)
        else:
            special = float_values(codes, base, 32, shift, up, scale, special_min, out, base,
                                   False)
        if special:  # (rare: an inf or NaN code in the block, redone from the table)
            finish_stream(direct)  # (the block's non-temporal stores before these)
            for i in range(32):
                out[base + i] = table[codes[base + i]] * scale
    finish_stream(direct)


@njit(parallel=True, cache=True, nogil=True)
def _mx_decode_parallel(codes, exps, shift, up, special_min, table, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(exps.size, c, nchunks)
        _mx_decode_slice(codes[start * 32:stop * 32], exps[start:stop], shift, up,
                         special_min, table, out[start * 32:stop * 32], stream)


def mx_decode(codes, exps, shift, up, special_min, table, out):
    """float32 ``out`` of the flat MX element codes (uint8) and the E8M0 codes ``exps``:
    ``value * 2**(e - 127)`` (the float32 ``2**128`` = inf for E8M0 0xFF).  The value is
    rebuilt from the code (``shift``: 23 - mantissa bits, ``up``: ``2**(127 - bias)``;
    ``shift`` 0: int8 codes times ``up`` = 1/64, MXINT8), or read from ``table`` (code ->
    float32) in a block holding a code at or above ``special_min``."""
    launch(_mx_decode_slice, _mx_decode_parallel, out, out,
           (codes, exps, np.uint32(shift), np.float32(up), np.uint32(special_min), table,
            out))


@intrinsic
def e2m1_values(typingctx, data, base, n, pack, scale, zero, out, at, nontemporal):
    """The ``n`` E2M1 values packed in ``data[base:base + n // 2]`` (``pack`` 1: GGML's
    halves, 2: neighbours, the first element low) times ``scale``, plus ``zero``, into
    ``out[at:at + n]``.  A value is rebuilt without a float32 subnormal: the magnitude
    bits under exponent 126 read ``y = (1 + m/2) * 2**(e - 1)``, the value itself for
    ``e >= 1``; ``2y - 1`` for the codes 0 and 0.5."""
    if not (values_ok(data, n, out, nontemporal) and literal(pack)):
        return None
    width, mode, nt = literal(n), literal(pack), nontemporal.literal_value

    def codegen(context, builder, sig, args):
        ds, b0, _, _, sc, zr, outa, at0, _ = args
        half = width // 2
        i8, i32 = ir.IntType(8), ir.IntType(32)
        vb, vi, vf = ir.VectorType(i8, half), ir.VectorType(i32, width), ir.VectorType(
            ir.FloatType(), width)
        byte = builder.load(vector_at(context, builder, sig.args[0], ds, b0, i8, half), align=1)
        lo = builder.and_(byte, ir.Constant(vb, [15] * half))
        hi = builder.lshr(byte, ir.Constant(vb, [4] * half))
        order = (list(range(width)) if mode == 1 else
                 [k // 2 + (half if k % 2 else 0) for k in range(width)])
        c = builder.zext(builder.shuffle_vector(lo, hi, ir.Constant(vi, order)), vi)
        mag = builder.and_(c, ir.Constant(vi, [7] * width))
        y = builder.bitcast(builder.add(builder.shl(mag, ir.Constant(vi, [22] * width)),
                                        ir.Constant(vi, [126 << 23] * width)), vf)
        small = builder.fsub(builder.fmul(y, ir.Constant(vf, [2.0] * width)),
                             ir.Constant(vf, [1.0] * width))
        v = builder.select(builder.icmp_unsigned(">=", mag, ir.Constant(vi, [2] * width)), y,
                           small)
        sign = builder.shl(builder.and_(c, ir.Constant(vi, [8] * width)),
                           ir.Constant(vi, [28] * width))
        v = builder.bitcast(builder.or_(builder.bitcast(v, vi), sign), vf)
        v = builder.fmul(v, splat(builder, scalar_as(context, builder, sc, sig.args[4],
                                                    types.float32), width))
        v = builder.fadd(v, splat(builder, scalar_as(context, builder, zr, sig.args[5],
                                                    types.float32), width))
        store_values(context, builder, sig.args[6], outa, at0, v, width, nt)
        return context.get_dummy_value()
    return types.none(data, base, n, pack, scale, zero, out, at, nontemporal), codegen


@njit(cache=True, nogil=True)
def _fp4_decode_slice(data, s8, table, tensor_scale, ggml, out, stream):
    direct = stream and address(out, 0) % 64 == 0  # (see _mx_decode_slice)
    # GGML's table holds +0 for the code -0: adding +0 turns -0 into +0, changing nothing
    # else; adding -0 changes nothing at all
    zero = np.float32(0) if ggml else np.float32(-0.0)
    if ggml:  # rows of 17 bytes: E8M0, then element j low and j + 16 high
        for r in range(out.size // 32):
            d = as_float(_power_bits(np.int32(data[r * 17]) - 127))
            if direct:
                e2m1_values(data, r * 17 + 1, 32, 1, d, zero, out, r * 32, True)
            else:
                e2m1_values(data, r * 17 + 1, 32, 1, d, zero, out, r * 32, False)
    else:  # NVFP4: byte j holds elements 2j (low) and 2j + 1, an E4M3 scale per 16
        for r in range(out.size // 16):
            d = tensor_scale * table[s8[r]]
            if direct:
                e2m1_values(data, r * 8, 16, 2, d, zero, out, r * 16, True)
            else:
                e2m1_values(data, r * 8, 16, 2, d, zero, out, r * 16, False)
    finish_stream(direct)


@njit(parallel=True, cache=True, nogil=True)
def _fp4_decode_parallel(data, s8, table, tensor_scale, ggml, out, nchunks, stream):
    unit = 32 if ggml else 16  # (elements per block)
    for c in prange(nchunks):
        start, stop = block_bounds(out.size // unit, c, nchunks)
        if ggml:
            _fp4_decode_slice(data[start * 17:stop * 17], s8, table, tensor_scale, ggml,
                              out[start * 32:stop * 32], stream)
        else:
            _fp4_decode_slice(data[start * 8:stop * 8], s8[start:stop], table, tensor_scale,
                              ggml, out[start * 16:stop * 16], stream)


def fp4_decode(data, s8, table, tensor_scale, ggml, out):
    """float32 ``out`` (flat) of E2M1 codes times block scales: ``ggml`` True: GGML
    MXFP4 rows ``data`` (``2**(e - 127)``, inf for E8M0 0xFF; the code -0 decodes to +0,
    as GGML's table; ``s8``, ``table``, ``tensor_scale`` unused); False: NVFP4 nibbles,
    first element low, times ``tensor_scale * table[s8]`` per 16 (the E4M3 scale codes
    ``s8`` and their float32 values ``table``; -0 kept)."""
    launch(_fp4_decode_slice, _fp4_decode_parallel, out, out,
           (data, s8, table, np.float32(tensor_scale), bool(ggml), out))
