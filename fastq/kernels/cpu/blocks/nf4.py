"""NF4 kernels (CPU): per-block absmax and table indices over a flat float32 array in
blocks of ``block`` elements (the last one partial).

``encode``: ``v = x / absmax`` (float32 division; an all-zero block divides by 1), and
the index is the number of table midpoints strictly below ``v``: the nearest entry, a
tie going to the lower index (``mid``: each midpoint rounded down to float32, which a
float32 ``v`` exceeds exactly when it exceeds the exact midpoint).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..parallel import block_bounds, launch
from .wide import (contiguous, literal, prefetch_lines, scalar_as, splat, store_codes,
                   store_values, top_bits, values_ok, vector_at)
from ..word import (add, address, as_bits, as_float, band, bor, finish_stream, like, local_block,
                    shl, shr)


_I8, _I32, _F32 = ir.IntType(8), ir.IntType(32), ir.FloatType()
@intrinsic
def nf4_codes(typingctx, x, base, n, a, mid, out, at):
    """NF4 indices of ``x[base:base + n] / a`` (float32 division): how many of the 15
    float32 midpoints ``mid`` lie below the quotient, packed two per byte, the first
    element low, at ``out[at]`` (``n`` a compile-time constant)."""
    if not (contiguous(x, out) and x.dtype == types.float32 and literal(n)
            and out.dtype == types.uint8):
        return None
    width = literal(n)

    def codegen(context, builder, sig, args):
        xs, b0, _, av, ma, outa, at0 = args
        vi = ir.VectorType(_I32, width)
        xv = builder.load(vector_at(context, builder, sig.args[0], xs, b0, _F32, width),
                          align=4)
        v = builder.fdiv(xv, splat(builder, scalar_as(context, builder, av, sig.args[3],
                                                     types.float32), width))
        data = context.make_array(sig.args[4])(context, builder, ma).data
        count = ir.Constant(vi, [0] * width)
        for k in range(15):  # (the mask is -1 where v > mid[k]: subtracting counts it)
            m = splat(builder, builder.load(builder.gep(data, [_I32(k)])), width)
            count = builder.sub(count, builder.sext(builder.fcmp_ordered(">", v, m), vi))
        store_codes(context, builder, sig.args[5], outa, at0, count, width, 2)
        return context.get_dummy_value()
    return types.none(x, base, n, a, mid, out, at), codegen


@intrinsic
def nf4_values(typingctx, data, base, n, table, a, out, at, nontemporal):
    """``table[code] * a`` of the ``n`` 4-bit codes packed in ``data[base:base + n //
    2]`` (the first element low) into ``out[at:at + n]``: the 16 table entries chosen
    by a tree of selects on the code's bits (no per-lane table load)."""
    if not (values_ok(data, n, out, nontemporal) and contiguous(table)
            and table.dtype == types.float32):
        return None
    width, nt = literal(n), nontemporal.literal_value

    def codegen(context, builder, sig, args):
        ds, b0, _, ta, av, outa, at0, _ = args
        half = width // 2
        vb, vi = ir.VectorType(_I8, half), ir.VectorType(_I32, width)
        byte = builder.load(vector_at(context, builder, sig.args[0], ds, b0, _I8, half), align=1)
        lo = builder.and_(byte, ir.Constant(vb, [15] * half))
        hi = builder.lshr(byte, ir.Constant(vb, [4] * half))
        order = [k // 2 + (half if k % 2 else 0) for k in range(width)]
        c = builder.zext(builder.shuffle_vector(lo, hi, ir.Constant(vi, order)), vi)
        tdata = context.make_array(sig.args[3])(context, builder, ta).data
        level = [splat(builder, builder.load(builder.gep(tdata, [_I32(k)])), width)
                 for k in range(16)]
        zero = ir.Constant(vi, [0] * width)
        for bit in (1, 2, 4, 8):  # (pairs of entries told apart by the code's next bit)
            on = builder.icmp_unsigned("!=", builder.and_(c, ir.Constant(vi, [bit] * width)),
                                       zero)
            level = [builder.select(on, level[k + 1], level[k]) for k in range(0, len(level), 2)]
        v = builder.fmul(level[0], splat(builder, scalar_as(context, builder, av, sig.args[4],
                                                           types.float32), width))
        store_values(context, builder, sig.args[5], outa, at0, v, width, nt)
        return context.get_dummy_value()
    return types.none(data, base, n, table, a, out, at, nontemporal), codegen


@njit(cache=True, nogil=True)
def _absmax_slice(x, block, out, stream):
    for b in range(out.size):
        top = np.float32(0)
        for i in range(b * block, min((b + 1) * block, x.size)):
            top = max(top, abs(x[i]))
        out[b] = top


@njit(parallel=True, cache=True, nogil=True)
def _absmax_parallel(x, block, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(out.size, c, nchunks)
        _absmax_slice(x[start * block:stop * block], block, out[start:stop], stream)


def absmax(x, block, out):
    """``out[b] = max |x[b*block:(b+1)*block]|`` (NaN-free input)."""
    launch(_absmax_slice, _absmax_parallel, x, out, (x, block, out))


@njit(cache=True, nogil=True)
def _encode_slice(x, block, amax, mid, codes, stream):
    m0, m1, m2, m3, m4, m5, m6, m7 = mid[0], mid[1], mid[2], mid[3], mid[4], mid[5], mid[6], mid[7]
    m8, m9, m10, m11, m12, m13, m14 = mid[8], mid[9], mid[10], mid[11], mid[12], mid[13], mid[14]
    for b in range(amax.size):
        a = amax[b] if amax[b] > 0 else np.float32(1)
        for i in range(b * block, min((b + 1) * block, x.size)):
            v = x[i] / a
            # how many of the 15 midpoints lie below v (compares against values held in
            # registers: the loop vectorizes, where a search would branch on the data)
            k = ((v > m0) + (v > m1) + (v > m2) + (v > m3) + (v > m4) + (v > m5)
                 + (v > m6) + (v > m7) + (v > m8) + (v > m9) + (v > m10) + (v > m11)
                 + (v > m12) + (v > m13) + (v > m14))
            codes[i] = k


@njit(parallel=True, cache=True, nogil=True)
def _encode_parallel(x, block, amax, mid, codes, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(amax.size, c, nchunks)
        _encode_slice(x[start * block:stop * block], block, amax[start:stop], mid,
                      codes[start * block:stop * block], stream)


def encode(x, block, amax, mid, codes):
    """uint8 ``codes`` of the flat float32 ``x`` with the per-block ``amax``."""
    launch(_encode_slice, _encode_parallel, x, codes, (x, block, amax, mid, codes))


@njit(cache=True, nogil=True, inline="always")
def _index(v, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14):
    """How many of the 15 midpoints lie below ``v`` (uint32 lanes: compares that
    vectorize, where a search would branch on the data)."""
    one = np.uint32(1)
    k = add(add(add(like(one, v > m0), like(one, v > m1)), add(like(one, v > m2),
                                                                like(one, v > m3))),
            add(add(like(one, v > m4), like(one, v > m5)), add(like(one, v > m6),
                                                               like(one, v > m7))))
    return add(k, add(add(add(like(one, v > m8), like(one, v > m9)),
                          add(like(one, v > m10), like(one, v > m11))),
                      add(add(like(one, v > m12), like(one, v > m13)), like(one, v > m14))))


# (error_model "numpy": the division without Numba's zero check, which would keep the
# element loop from vectorizing; the divisor is positive)
@njit(cache=True, nogil=True, error_model="numpy")
def _packed_slice(x, block, mid, absmax, out, stream):
    m0, m1, m2, m3, m4, m5, m6, m7 = mid[0], mid[1], mid[2], mid[3], mid[4], mid[5], mid[6], mid[7]
    m8, m9, m10, m11, m12, m13, m14 = mid[8], mid[9], mid[10], mid[11], mid[12], mid[13], mid[14]
    codes = local_block(out, 64)
    mask = np.uint32(0x7FFFFFFF)
    whole = x.size // 64 if block == 64 else 0
    for b in range(whole):  # (blocks of 64 as vector values: wide.py)
        if b + 16 < whole:
            prefetch_lines(x, (b + 8) * 64, 256)
        top = top_bits(x, b * 64, 64)
        absmax[b] = as_float(top)
        a = as_float(top) if top else np.float32(1)
        for p in range(0, 64, 16):  # (16 lanes a call: see _decode_slice)
            nf4_codes(x, b * 64 + p, 16, a, mid, out, b * 32 + p // 2)
    for b in range(whole, absmax.size):
        base = b * block
        size = min(block, x.size - base)
        top = np.uint32(0)
        for i in range(size):
            top = max(top, band(as_bits(x[base + i]), mask))
        absmax[b] = as_float(top)
        a = as_float(top) if top else np.float32(1)
        for p in range(0, size, 64):  # (codes 64 at a time into a buffer, then packed)
            m = min(64, size - p)
            src = np.uint64(base + p)  # (an unsigned index: no negative-index check,
            for i in range(m):        # which would turn the loads into one-by-one gathers)
                codes[i] = _index(x[src + np.uint64(i)] / a, m0, m1, m2, m3, m4, m5, m6, m7,
                                  m8, m9, m10, m11, m12, m13, m14)
            at = np.uint64((base + p) // 2)
            for j in range(m // 2):
                out[at + np.uint64(j)] = bor(codes[2 * j], shl(codes[2 * j + 1], np.uint8(4)))
            if m % 2:  # (the last element of an odd-sized tensor: a byte of its own)
                out[at + m // 2] = codes[m - 1]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _packed_parallel(x, block, mid, absmax, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(absmax.size, c, nchunks)
        _packed_slice(x[start * block:stop * block], block, mid, absmax[start:stop],
                      out[start * block // 2:(stop * block + 1) // 2], stream)


def quantize_packed(x, block, mid, absmax, out):
    """NF4 in one pass over the flat finite float32 ``x`` with an even ``block``: the
    per-block absmax into ``absmax`` and the table indices (``encode``'s rule) packed two
    per byte, the first element in the low nibble, into ``out`` (``ceil(n / 2)`` bytes)."""
    launch(_packed_slice, _packed_parallel, x, out, (x, np.int64(block), mid, absmax, out))


@njit(cache=True, nogil=True)
def _decode_slice(data, block, table, absmax, out, stream):
    # (blocks of 64 as vector values, wide.py; non-temporal stores straight from the
    # registers where the output streams and is aligned: 256-byte blocks)
    whole = out.size // 64 if block == 64 else 0
    direct = stream and address(out, 0) % 64 == 0
    for b in range(whole):  # (16 lanes a call: wider masks cost LLVM shuffles on AVX2)
        a = absmax[b]
        for p in range(0, 64, 16):
            if direct:
                nf4_values(data, b * 32 + p // 2, 16, table, a, out, b * 64 + p, True)
            else:
                nf4_values(data, b * 32 + p // 2, 16, table, a, out, b * 64 + p, False)
    finish_stream(direct)
    for b in range(whole, absmax.size):
        a = absmax[b]
        for i in range(b * block, min((b + 1) * block, out.size)):
            code = shr(data[i >> 1], np.uint8((i & 1) * 4)) & np.uint8(15)
            out[i] = table[code] * a


@njit(parallel=True, cache=True, nogil=True)
def _decode_parallel(data, block, table, absmax, out, nchunks, stream):
    for c in prange(nchunks):
        start, stop = block_bounds(absmax.size, c, nchunks)
        _decode_slice(data[start * block // 2:(stop * block + 1) // 2], block, table,
                      absmax[start:stop], out[start * block:stop * block], stream)


def decode(data, block, table, absmax, out):
    """``out[i] = table[code_i] * absmax[i // block]`` (float32), the 4-bit codes packed
    in ``data`` first element low, for an even ``block``."""
    launch(_decode_slice, _decode_parallel, out, out, (data, np.int64(block), table, absmax,
                                                       out))
