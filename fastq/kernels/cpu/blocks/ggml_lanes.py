"""GGML's bytes as 16-lane float32 vectors (``lanes.vec``), for the kernels of the
legacy formats (``ggml``) and of q2_K/q3_K (``kquant.low``): LLVM intrinsics that read
16 codes from their bytes into float32 lanes (int8, a nibble, a 2-bit field, q5's fifth
bits, q3_K's codes with their hmask bit), pack 32 codes back into nibbles, and store a
vector by non-temporal stores (``put``); and the lane-wise steps before a conversion to
bytes that NumPy's x86 casts fix (``truncatable``, ``round_away``).  Each is a few vector instructions (a 16-byte
load widened in registers, shifts and masks, one conversion), where LLVM's vectorized
loop over a block's bytes paid runtime alias checks and a trip-count dispatch per block;
see docs/design.md ("Legacy formats")."""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import lanes as V

_VI = ir.VectorType(ir.IntType(32), V.WIDTH)  # (16 int32 lanes)
_VB = ir.VectorType(ir.IntType(8), V.WIDTH)


def _int_lanes(context, builder, value, ty):
    """The integer ``value`` (Numba type ``ty``) as int32 in all 16 lanes."""
    v = context.cast(builder, value, ty, types.int32)
    one = builder.insert_element(ir.Constant(_VI, None), v, ir.IntType(32)(0))
    return builder.shuffle_vector(one, ir.Constant(_VI, None), ir.Constant(_VI, [0] * V.WIDTH))


def _bytes_at(context, builder, arrty, arr, i):
    """A ``<16 x i8>`` pointer to ``arr[i]``."""
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [i]), _VB.as_pointer())


def _byte_lanes(signed):
    def lanes(typingctx, a, i, shift, offset):
        """16 bytes ``a[i:i + 16]`` as float32 lanes: ``float(int8(a))`` (``signed``) or
        ``float(((a >> shift) & 15) - offset)`` (a nibble, ``shift`` 0 or 4)."""
        if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8 \
                and isinstance(i, types.Integer):
            def codegen(context, builder, sig, args):
                b = builder.load(_bytes_at(context, builder, sig.args[0], *args[:2]), align=1)
                if signed:
                    q = builder.sext(b, _VI)
                else:
                    q = builder.lshr(builder.zext(b, _VI),
                                     _int_lanes(context, builder, args[2], sig.args[2]))
                    q = builder.and_(q, ir.Constant(_VI, [15] * V.WIDTH))
                    q = builder.sub(q, _int_lanes(context, builder, args[3], sig.args[3]))
                return builder.sitofp(q, V._VF)
            return V.vec(a, i, shift, offset), codegen
        return None
    return intrinsic(lanes)


int8_lanes = _byte_lanes(True)
nibble_lanes = _byte_lanes(False)


@intrinsic
def pack_codes(typingctx, out, o, flo, fhi, cap):
    """Codes ``min(cap, int32(f) & 0xFF)`` of the 16 lanes ``flo`` (elements 0..15 of a
    block) and ``fhi`` (16..31), whose lanes are whole-number-truncatable (``|f| <
    2**31``: the caller zeroes the others, ``truncatable``); their low nibbles
    packed into ``out[o:o + 16]`` (``lo | hi << 4``).  Returns the fifth bits (uint32: bit ``j`` of
    code ``j``, bit ``16 + j`` of code ``16 + j``), q5_0/q5_1's ``qh``."""
    if isinstance(out, types.Array) and out.dtype == types.uint8 and flo == V.vec \
            and fhi == V.vec and isinstance(cap, types.Integer):
        def codegen(context, builder, sig, args):
            cap = _int_lanes(context, builder, args[4], sig.args[4])

            def codes(f):
                q = builder.and_(builder.fptosi(f, _VI), ir.Constant(_VI, [255] * V.WIDTH))
                return builder.select(builder.icmp_signed(">", q, cap), cap, q)
            lo, hi = codes(args[2]), codes(args[3])
            nib = ir.Constant(_VI, [15] * V.WIDTH)
            byte = builder.or_(builder.and_(lo, nib), builder.shl(builder.and_(hi, nib),
                                                                  ir.Constant(_VI, [4] * V.WIDTH)))
            builder.store(builder.trunc(byte, _VB),
                          _bytes_at(context, builder, sig.args[0], *args[:2]), align=1)

            def fifth(q):  # (bit 4 of each lane, as a 16-bit mask)
                bit = builder.icmp_unsigned("!=", builder.and_(q, ir.Constant(_VI, [16] * 16)),
                                            ir.Constant(_VI, [0] * V.WIDTH))
                return builder.zext(builder.bitcast(bit, ir.IntType(V.WIDTH)), ir.IntType(32))
            return builder.or_(fifth(lo), builder.shl(fifth(hi), ir.IntType(32)(16)))
        return types.uint32(out, o, flo, fhi, cap), codegen
    return None


@intrinsic
def bit_lanes(typingctx, a, i, shift, mask):
    """16 bytes ``a[i:i + 16]`` as float32 lanes ``float((a >> shift) & mask)``."""
    if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8 \
            and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            b = builder.load(_bytes_at(context, builder, sig.args[0], *args[:2]), align=1)
            q = builder.lshr(builder.zext(b, _VI),
                             _int_lanes(context, builder, args[2], sig.args[2]))
            q = builder.and_(q, _int_lanes(context, builder, args[3], sig.args[3]))
            return builder.sitofp(q, V._VF)
        return V.vec(a, i, shift, mask), codegen
    return None


@intrinsic
def q3_code_lanes(typingctx, a, q, shift, h, bit):
    """16 q3_K codes as float32 lanes, ``((a[q:q + 16] >> shift) & 3 | ((a[h:h + 16] >>
    bit) & 1) << 2) - 4`` (C's ``q - (hmask bit ? 0 : 4)``), combined as int32 lanes
    and converted once."""
    if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8:
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data

            def field(at, at_ty, by, by_ty, mask):
                ptr = builder.bitcast(builder.gep(data, [context.cast(
                    builder, at, at_ty, types.intp)]), _VB.as_pointer())
                b = builder.zext(builder.load(ptr, align=1), _VI)
                return builder.and_(builder.lshr(b, _int_lanes(context, builder, by, by_ty)),
                                    ir.Constant(_VI, [mask] * V.WIDTH))
            t = sig.args
            low = field(args[1], t[1], args[2], t[2], 3)
            high = field(args[3], t[3], args[4], t[4], 1)
            code = builder.or_(low, builder.shl(high, ir.Constant(_VI, [2] * V.WIDTH)))
            code = builder.sub(code, ir.Constant(_VI, [4] * V.WIDTH))
            return builder.sitofp(code, V._VF)
        return V.vec(a, q, shift, h, bit), codegen
    return None


@intrinsic
def fifth_lanes(typingctx, qh, first):
    """16 float32 lanes ``16.0 * ((qh >> (first + j)) & 1)``, ``j`` the lane: the fifth
    bits of q5_0/q5_1 codes ``first..first + 15`` (a shift per lane, ``vpsrlvd``)."""
    if isinstance(qh, types.Integer) and isinstance(first, types.Integer):
        def codegen(context, builder, sig, args):
            shifts = builder.add(_int_lanes(context, builder, args[1], sig.args[1]),
                                 ir.Constant(_VI, list(range(V.WIDTH))))
            q = builder.lshr(_int_lanes(context, builder, args[0], sig.args[0]), shifts)
            bits = builder.and_(q, ir.Constant(_VI, [1] * V.WIDTH))
            return builder.sitofp(builder.shl(bits, ir.Constant(_VI, [4] * V.WIDTH)), V._VF)
        return V.vec(qh, first), codegen
    return None


@intrinsic
def stream_store(typingctx, a, i, v):
    """``a[i:i + 16] = v`` (float32) by non-temporal stores, which need ``a[i]`` 16-byte
    aligned (``store_fence`` orders them)."""
    if isinstance(a, types.Array) and a.dtype == types.float32 and v == V.vec:
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            ptr = builder.bitcast(builder.gep(data, [args[1]]), V._VF.as_pointer())
            store = builder.store(args[2], ptr, align=16)
            store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
            return context.get_dummy_value()
        return types.none(a, i, v), codegen
    return None


@njit(cache=True, nogil=True, inline="always")
def put(dst, stream, y, v):
    """``dst[y:y + 16] = v``; with ``stream`` (a literal after inlining) by non-temporal
    stores: an output past the last-level cache is then written without first reading
    each of its cache lines (16M elements: 5.1 -> 3.7 ms for q4_0, C 5.7 ms)."""
    if stream:
        stream_store(dst, y, v)
    else:
        V.store(dst, y, v)


@njit(cache=True, nogil=True, inline="always")
def truncatable(f):
    """``f``, 0 in the lanes where its int32 conversion is undefined (NaN, inf, out of
    range): NumPy's (x86) float32 -> uint8 gives 0 there."""
    return V.select(V.lt(V.fabs(f), V.splat(np.float32(2147483648.0))), f,
                    V.splat(np.float32(0.0)))


@njit(cache=True, nogil=True, inline="always")
def round_away(v):
    """``roundf(v)`` (half away from zero, as ``gguf.quants.np_roundf``) lane by lane for
    ``|v| < 2**31`` (``truncatable`` zeroes the others: NaN, inf, out of range, as NumPy's
    x86 cast), before ``lanes.store_bytes`` converts it (truncating) and keeps the low byte:
    ``roundf(a) = trunc(a + 0.49999997)`` for ``a >= 0`` (the float32 below 0.5; equal
    to the truncate-and-compare form on all 2**32 float32 values, whose int-to-float round
    trip kept the loop scalar), with ``v``'s sign."""
    zero = V.splat(np.float32(0.0))
    r = V.add(V.fabs(v), V.splat(np.float32(0.49999997)))
    return V.select(V.lt(v, zero), V.sub(zero, r), r)
