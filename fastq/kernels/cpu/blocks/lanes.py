"""Sixteen float32 lanes as one value: explicit vectors for loops that LLVM's vectorizers
leave scalar.

A per-lane search whose state is a handful of running sums (K-quants' candidate scales:
one sub-block a lane, each lane's sums added element after element) needs those sums in
registers across the element loop.  Written as loops over lanes, LLVM either vectorizes
the lane loop with the sums in memory (a store-to-load chain per element) or unrolls it
into scalar code, depending on the loop's size.  A ``vec`` is an LLVM ``<16 x float>``
value held in a Numba variable: every operation below is one instruction on all lanes
(two on AVX2, whose registers hold 8: two independent chains, which hides the latency
of a running sum), with IEEE float32 semantics per lane (no reassociation, no
contraction into FMA), so a lane computes exactly what the scalar code computes.
A ``mask`` is a lane mask (``<16 x i1>``).  Loads and stores take 16 consecutive float32
at ``a[i]`` (1-D contiguous ``a``; ``i + 16 <= a.size`` is the caller's to ensure).
``reduce_min``/``reduce_max`` reduce the 16 lanes to one float32 (by halving).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


WIDTH = 16


class Float32x16Type(types.Type):
    def __init__(self):
        super().__init__(name="float32x16")


class Mask16Type(types.Type):
    def __init__(self):
        super().__init__(name="maskx16")


vec = Float32x16Type()
mask = Mask16Type()
_VF = ir.VectorType(ir.FloatType(), WIDTH)
_VI = ir.VectorType(ir.IntType(32), WIDTH)
_VM = ir.VectorType(ir.IntType(1), WIDTH)


@register_model(Float32x16Type)
class _Float32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VF)


@register_model(Mask16Type)
class _Mask16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VM)


def _pointer(context, builder, arrty, arr, i):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [i]), _VF.as_pointer())


def _is_f32_array(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32


@intrinsic
def load(typingctx, a, i):
    """``a[i:i + 16]`` of a float32 array."""
    if _is_f32_array(a) and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            return builder.load(_pointer(context, builder, sig.args[0], *args), align=4)
        return vec(a, i), codegen
    return None


@intrinsic
def store(typingctx, a, i, v):
    """``a[i:i + 16] = v``."""
    if _is_f32_array(a) and isinstance(i, types.Integer) and v == vec:
        def codegen(context, builder, sig, args):
            builder.store(args[2], _pointer(context, builder, sig.args[0], args[0], args[1]),
                          align=4)
            return context.get_dummy_value()
        return types.none(a, i, v), codegen
    return None


@intrinsic
def splat(typingctx, f):
    """The float32 ``f`` in all lanes."""
    if isinstance(f, types.Float):
        def codegen(context, builder, sig, args):
            v = context.cast(builder, args[0], sig.args[0], types.float32)
            one = builder.insert_element(ir.Constant(_VF, None), v, ir.IntType(32)(0))
            return builder.shuffle_vector(one, ir.Constant(_VF, None),
                                          ir.Constant(_VI, [0] * WIDTH))
        return vec(f), codegen
    return None


def _binary(method, doc):
    @intrinsic
    def op(typingctx, a, b):
        if a == vec and b == vec:
            def codegen(context, builder, sig, args):
                return getattr(builder, method)(*args)
            return vec(a, b), codegen
        return None
    op.__doc__ = doc
    return op


add = _binary("fadd", "Lane by lane ``a + b``.")
sub = _binary("fsub", "Lane by lane ``a - b``.")
mul = _binary("fmul", "Lane by lane ``a * b``.")
div = _binary("fdiv", "Lane by lane ``a / b``.")


def _compare(op_text, doc):
    @intrinsic
    def op(typingctx, a, b):
        if a == vec and b == vec:
            def codegen(context, builder, sig, args):
                return builder.fcmp_ordered(op_text, *args)  # (False where a lane is NaN)
            return mask(a, b), codegen
        return None
    op.__doc__ = doc
    return op


lt = _compare("<", "Lane by lane ``a < b``.")
gt = _compare(">", "Lane by lane ``a > b``.")
eq = _compare("==", "Lane by lane ``a == b``.")


@intrinsic
def both(typingctx, a, b):
    """Lane by lane ``a and b`` of two masks."""
    if a == mask and b == mask:
        def codegen(context, builder, sig, args):
            return builder.and_(*args)
        return mask(a, b), codegen
    return None


@intrinsic
def either(typingctx, a, b):
    """Lane by lane ``a or b`` of two masks."""
    if a == mask and b == mask:
        def codegen(context, builder, sig, args):
            return builder.or_(*args)
        return mask(a, b), codegen
    return None


@intrinsic
def select(typingctx, m, a, b):
    """Lane by lane ``a if m else b``."""
    if m == mask and a == vec and b == vec:
        def codegen(context, builder, sig, args):
            return builder.select(*args)
        return vec(m, a, b), codegen
    return None


@intrinsic
def every(typingctx, m):
    """Whether all lanes of the mask are set."""
    if m == mask:
        def codegen(context, builder, sig, args):
            bits = builder.bitcast(args[0], ir.IntType(WIDTH))
            return builder.icmp_unsigned("==", bits, ir.IntType(WIDTH)(2 ** WIDTH - 1))
        return types.boolean(m), codegen
    return None


@intrinsic
def any(typingctx, m):  # noqa: A001 (lanes.any, beside lanes.every)
    """Whether any lane of the mask is set."""
    if m == mask:
        def codegen(context, builder, sig, args):
            bits = builder.bitcast(args[0], ir.IntType(WIDTH))
            return builder.icmp_unsigned("!=", bits, ir.IntType(WIDTH)(0))
        return types.boolean(m), codegen
    return None


def _minmax(pred, doc):
    @intrinsic
    def op(typingctx, a, b):
        if a == vec and b == vec:
            def codegen(context, builder, sig, args):
                # (x86's minps/maxps form: b where either lane is NaN)
                return builder.select(builder.fcmp_ordered(pred, *args), args[0], args[1])
            return vec(a, b), codegen
        return None
    op.__doc__ = doc
    return op


minimum = _minmax("<", "Lane by lane ``a if a < b else b``.")
maximum = _minmax(">", "Lane by lane ``a if a > b else b``.")


def _reduction(pred, name):
    def reduce(typingctx, v):
        """The %s of the 16 lanes of ``v`` (no NaN lanes; which of +0/-0 is unspecified),
        by halving: 4 lane-wise compares and selects (``minps``/``maxps``), where LLVM's
        ``vector.reduce`` makes a NaN-checking scalar chain of 16."""
        if v == vec:
            def codegen(context, builder, sig, args):
                x, width = args[0], WIDTH
                while width > 1:
                    half = width // 2
                    lo = builder.shuffle_vector(x, x, ir.Constant(
                        ir.VectorType(ir.IntType(32), half), list(range(half))))
                    hi = builder.shuffle_vector(x, x, ir.Constant(
                        ir.VectorType(ir.IntType(32), half), list(range(half, width))))
                    x = builder.select(builder.fcmp_ordered(pred, lo, hi), lo, hi)
                    width = half
                return builder.extract_element(x, ir.IntType(32)(0))
            return types.float32(v), codegen
        return None
    reduce.__doc__ = reduce.__doc__ % name
    return intrinsic(reduce)


reduce_min = _reduction("<", "minimum")
reduce_max = _reduction(">", "maximum")


def _fold(pred, name):
    def fold(typingctx, a, b, group):
        """One step of a %s across 16 vectors at once: ``a`` and ``b`` hold groups of
        ``2 * group`` lanes (a constant: 8, 4, 2 or 1), one group per vector being reduced;
        the result holds the groups of both, each halved to ``group`` lanes (lane ``i``
        the %s of two lanes of its group).  Folding 16 vectors pairwise at groups 8, 4,
        2, 1 leaves vector ``k``'s reduction in lane ``k``: 15 folds of two shuffles and
        a compare and select each, where 16 reductions take 64 (no NaN lanes; which of
        +0/-0 is unspecified)."""
        if a == vec and b == vec and isinstance(group, types.IntegerLiteral):
            g = group.literal_value
            low = [(i // g) * 2 * g + i % g for i in range(WIDTH)]
            indices = [ir.Constant(_VI, low), ir.Constant(_VI, [k + g for k in low])]

            def codegen(context, builder, sig, args):
                lo, hi = (builder.shuffle_vector(args[0], args[1], i) for i in indices)
                return builder.select(builder.fcmp_ordered(pred, lo, hi), lo, hi)
            return vec(a, b, group), codegen
        return None
    fold.__doc__ = fold.__doc__ % (name, name)
    return intrinsic(fold)


fold_min = _fold("<", "minimum")
fold_max = _fold(">", "maximum")


@intrinsic
def nearest_int_clamped(typingctx, a, lo, hi):
    """Lane by lane ``float(clamp(nearest_int(a), lo, hi))`` with llama.cpp's
    ``nearest_int`` bit for bit (``a + 12582912``'s low 23 bits minus ``0x400000``),
    whatever ``a`` is (inf, NaN, out of range); ``lo``, ``hi`` integers."""
    if a == vec and isinstance(lo, types.Integer) and isinstance(hi, types.Integer):
        def codegen(context, builder, sig, args):
            magic = ir.Constant(_VF, [12582912.0] * WIDTH)
            bits = builder.bitcast(builder.fadd(args[0], magic), _VI)
            n = builder.sub(builder.and_(bits, ir.Constant(_VI, [0x7FFFFF] * WIDTH)),
                            ir.Constant(_VI, [0x400000] * WIDTH))
            bounds = []
            for arg, ty in zip(args[1:], sig.args[1:]):
                v = context.cast(builder, arg, ty, types.int32)
                one = builder.insert_element(ir.Constant(_VI, None), v, ir.IntType(32)(0))
                bounds.append(builder.shuffle_vector(one, ir.Constant(_VI, None),
                                                     ir.Constant(_VI, [0] * WIDTH)))
            n = builder.select(builder.icmp_signed(">", n, bounds[1]), bounds[1], n)
            n = builder.select(builder.icmp_signed("<", n, bounds[0]), bounds[0], n)
            return builder.sitofp(n, _VF)
        return vec(a, lo, hi), codegen
    return None


def _unary(name, doc):
    @intrinsic
    def op(typingctx, a):
        if a == vec:
            def codegen(context, builder, sig, args):
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(_VF, [_VF]), f"llvm.{name}.v{WIDTH}f32")
                return builder.call(fn, [args[0]])
            return vec(a), codegen
        return None
    op.__doc__ = doc
    return op


sqrt = _unary("sqrt", "Lane by lane ``sqrtf(a)`` (correctly rounded, as C's).")
fabs = _unary("fabs", "Lane by lane ``fabsf(a)`` (the sign bit cleared).")
rint = _unary("rint", """Lane by lane round to integer in the current rounding mode
(``roundps``); the same value as ``(a + 1.5 * 2**23) - 1.5 * 2**23`` for ``|a| < 2**22``.""")
floor = _unary("floor", "Lane by lane ``floorf(a)``.")


@intrinsic
def store_bytes(typingctx, a, i, v):
    """``a[i:i + 16] = v`` into a uint8 array, each lane converted as C's
    ``(uint8_t)(int)v`` (lanes that are whole numbers in 0..255)."""
    if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8 \
            and isinstance(i, types.Integer) and v == vec:
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            vb = ir.VectorType(ir.IntType(8), WIDTH)
            b = builder.trunc(builder.fptosi(args[2], _VI), vb)
            builder.store(b, builder.bitcast(builder.gep(data, [args[1]]), vb.as_pointer()),
                          align=1)
            return context.get_dummy_value()
        return types.none(a, i, v), codegen
    return None


def _transpose8(builder, rows):
    """The 8x8 transpose of eight ``<8 x float>`` rows, in the three shuffle stages that
    x86 has single instructions for (unpcklps/unpckhps, shufps, vperm2f128)."""
    def shuffle(a, b, idx):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), idx))
    lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
    t = []
    for r in range(0, 8, 2):
        t += [shuffle(rows[r], rows[r + 1], lo), shuffle(rows[r], rows[r + 1], hi)]
    # t: 0 = r0r1 lo, 1 = r0r1 hi, 2 = r2r3 lo, 3 = r2r3 hi, ...
    q_lo, q_hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    u = [None] * 8
    for base in (0, 4):
        for half in (0, 1):
            a, b = t[base + half], t[base + 2 + half]
            u[base + 2 * half] = shuffle(a, b, q_lo)
            u[base + 2 * half + 1] = shuffle(a, b, q_hi)
    # u[base + j]: column j (of 0..3) of rows base..base + 3, in both 128-bit halves
    lanes_lo, lanes_hi = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    return ([shuffle(u[j], u[4 + j], lanes_lo) for j in range(4)]
            + [shuffle(u[j], u[4 + j], lanes_hi) for j in range(4)])


@intrinsic
def transpose_store(typingctx, src, s0, s_stride, dst, d0, d_stride):
    """``dst[d0 + d_stride * c + r] = src[s0 + s_stride * r + c]`` for ``r, c`` in
    0..15: a 16x16 block of float32 transposed (four 8x8 transposes in shuffles, not 256
    scalar loads and strided stores); the caller ensures every index is in range."""
    ints = (s0, s_stride, d0, d_stride)
    if _is_f32_array(src) and _is_f32_array(dst) \
            and all(isinstance(i, types.Integer) for i in ints):
        def codegen(context, builder, sig, args):
            v8 = ir.VectorType(ir.FloatType(), 8)
            i64 = ir.IntType(64)
            idx = [context.cast(builder, a, t, types.int64)
                   for a, t in zip((args[1], args[2], args[4], args[5]),
                                   (sig.args[1], sig.args[2], sig.args[4], sig.args[5]))]
            sdata = context.make_array(sig.args[0])(context, builder, args[0]).data
            ddata = context.make_array(sig.args[3])(context, builder, args[3]).data

            def at(data, start, stride, row, col):
                i = builder.add(start, builder.add(builder.mul(stride, i64(row)), i64(col)))
                return builder.bitcast(builder.gep(data, [i]), v8.as_pointer())
            for rb in (0, 8):
                for cb in (0, 8):
                    rows = [builder.load(at(sdata, idx[0], idx[1], rb + r, cb), align=4)
                            for r in range(8)]
                    for c, col in enumerate(_transpose8(builder, rows)):
                        builder.store(col, at(ddata, idx[2], idx[3], cb + c, rb), align=4)
            return context.get_dummy_value()
        return types.none(src, s0, s_stride, dst, d0, d_stride), codegen
    return None


@intrinsic
def load_int8(typingctx, a, i):
    """``a[i:i + 16]`` of a uint8 array read as C's ``int8_t`` (low byte, signed), as
    float32 lanes."""
    if isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8 \
            and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            vb = ir.VectorType(ir.IntType(8), WIDTH)
            b = builder.load(builder.bitcast(builder.gep(data, [args[1]]), vb.as_pointer()),
                             align=1)
            return builder.sitofp(b, _VF)
        return vec(a, i), codegen
    return None
