"""Whole-block vector intrinsics of the microscaling kernels (``microscale``, ``nf4``).

A block of 16, 32 or 64 float32 is one LLVM vector value here (``<n x float>``, ``n`` a
compile-time constant), so a block costs what its arithmetic costs.  Written as Numba
loops instead, a loop over a block of a runtime width carries a vector loop's setup
and remainder per block, and one of a constant width is unrolled whole before LLVM's
loop vectorizer runs (then left mostly scalar); either way the block's largest
magnitude needs a reduction loop, and the codes narrowed to bytes eight at a time cost
more shuffles than the rounding itself.  Here the reduction is
``llvm.vector.reduce.umax`` and the narrowing is done once per block.

Every lane computes exactly what the scalar code of ``microscale._small_float`` and the
MXINT8 rounding compute (IEEE float32 operations, no reassociation, no contraction
into FMA); ``min``/``max`` take x86's ``minps``/``maxps`` form (the second operand when
either is NaN), only reached by blocks whose codes are discarded (inf or NaN in them).
Loads and stores are unaligned; ``base + n`` within the arrays is the caller's to
ensure.  Packing modes (``pack``): 0 one code a byte; 1 GGML's halves (byte ``j`` =
code ``j`` | code ``j + n/2`` << 4); 2 neighbours (byte ``j`` = code ``2j`` | code
``2j + 1`` << 4).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I8, _I32, _F32 = ir.IntType(8), ir.IntType(32), ir.FloatType()


def contiguous(*arrays):
    """Whether all are 1-D C-contiguous arrays (the vector loads and stores read
    consecutive elements; any other layout does not type)."""
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays)


def literal(n):
    return n.literal_value if isinstance(n, types.IntegerLiteral) else None


def vector_at(context, builder, arrty, arr, i, elem, n):
    # (consecutive elements: only C-contiguous arrays type, see contiguous)
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [i]), ir.VectorType(elem, n).as_pointer())


def splat(builder, value, n):
    vt = ir.VectorType(value.type, n)
    one = builder.insert_element(ir.Constant(vt, None), value, _I32(0))
    return builder.shuffle_vector(one, ir.Constant(vt, None), ir.Constant(
        ir.VectorType(_I32, n), [0] * n))


def scalar_as(context, builder, value, fromty, toty):
    return context.cast(builder, value, fromty, toty)


def _min(builder, a, b):  # (x86 minps: b where either is NaN)
    return builder.select(builder.fcmp_ordered("<", a, b), a, b)


def _max(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@intrinsic
def top_bits(typingctx, x, base, n):
    """The largest float32 magnitude bits (uint32) of ``x[base:base + n]`` (the float
    order for finite values; inf and NaN at or above ``0x7F800000``)."""
    if contiguous(x) and x.dtype == types.float32 and literal(n):
        width = literal(n)

        def codegen(context, builder, sig, args):
            vt = ir.VectorType(_I32, width)
            v = builder.load(vector_at(context, builder, sig.args[0], args[0], args[1], _I32,
                                        width), align=4)
            v = builder.and_(v, ir.Constant(vt, [0x7FFFFFFF] * width))
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [vt]),
                                                f"llvm.vector.reduce.umax.v{width}i32")
            return builder.call(fn, [v])
        return types.uint32(x, base, n), codegen
    return None


def store_codes(context, builder, outty, out, at, code, width, pack):
    """Store the ``<width x i32>`` codes (0..255) at ``out[at]`` as bytes in packing mode
    ``pack``: nibble pairs are joined in the 32-bit lanes, then narrowed (half as many
    lanes to narrow, and no byte shuffles)."""
    if pack:
        half = width // 2
        if pack == 1:
            lo_idx, hi_idx = list(range(half)), list(range(half, width))
        else:
            lo_idx, hi_idx = list(range(0, width, 2)), list(range(1, width, 2))
        mask = ir.VectorType(_I32, half)
        lo = builder.shuffle_vector(code, code, ir.Constant(mask, lo_idx))
        hi = builder.shuffle_vector(code, code, ir.Constant(mask, hi_idx))
        code = builder.or_(lo, builder.shl(hi, ir.Constant(mask, [4] * half)))
        width = half
    builder.store(_narrow(builder, code, width),
                  vector_at(context, builder, outty, out, at, _I8, width), align=1)


def _narrow(builder, code, width):
    """``<width x i32>`` lanes in 0..255 to bytes (a clamp x86 folds into its
    saturating packs)."""
    vi = code.type
    fns = [cgutils.get_or_insert_function(builder.module, ir.FunctionType(vi, [vi, vi]),
                                          f"llvm.{op}.v{width}i32") for op in ("smax", "smin")]
    code = builder.call(fns[0], [code, ir.Constant(vi, [0] * width)])
    code = builder.call(fns[1], [code, ir.Constant(vi, [255] * width)])
    return builder.trunc(code, ir.VectorType(_I8, width))


@intrinsic
def float_codes(typingctx, x, base, n, d, d_hi, divide, fp, up, out, at, pack):
    """The small-float codes (``microscale._small_float``: ``fp = [norm, magic, fmax]``
    float32, ``up = [shift, sign shift, sign bit]`` uint32) of ``x[base:base + n] * d``
    (``divide`` True: ``/ d``; ``d_hi`` in place of ``d`` for the upper ``n / 2``
    lanes: two blocks in one call), stored at ``out[at]`` (uint8) in packing mode ``pack``
    (compile-time constants: ``n``, ``divide``, ``pack``)."""
    if not (contiguous(x, out) and x.dtype == types.float32 and literal(n)
            and isinstance(divide, types.BooleanLiteral) and literal(pack) is not None
            and isinstance(out, types.Array) and out.dtype == types.uint8):
        return None
    width, by_division, mode = literal(n), divide.literal_value, literal(pack)

    def codegen(context, builder, sig, args):
        xs, b0, _, dv, dh, _, fpa, upa, outa, at0, _ = args
        vf, vi = ir.VectorType(_F32, width), ir.VectorType(_I32, width)

        def item(arrty, arr, k, elem):
            data = context.make_array(arrty)(context, builder, arr).data
            return builder.load(builder.gep(data, [_I32(k)]))

        norm, magic, fmax = (splat(builder, item(sig.args[6], fpa, k, _F32), width)
                             for k in range(3))
        shift, sign_shift, sign_bit = (splat(builder, item(sig.args[7], upa, k, _I32), width)
                                       for k in range(3))
        low = builder.bitcast(builder.fmul(norm, magic), vi)
        xv = builder.load(vector_at(context, builder, sig.args[0], xs, b0, _F32, width),
                          align=4)
        lo_d, hi_d = (splat(builder, scalar_as(context, builder, v, t, types.float32), width // 2)
                      for v, t in ((dv, sig.args[3]), (dh, sig.args[4])))
        dsplat = builder.shuffle_vector(lo_d, hi_d, ir.Constant(ir.VectorType(_I32, width),
                                                                list(range(width))))
        v = builder.fdiv(xv, dsplat) if by_division else builder.fmul(xv, dsplat)
        bits = builder.bitcast(v, vi)
        a = builder.bitcast(builder.and_(bits, ir.Constant(vi, [0x7FFFFFFF] * width)), vf)
        a = _min(builder, a, fmax)
        e = builder.bitcast(builder.and_(builder.bitcast(a, vi),
                                         ir.Constant(vi, [0x7F800000] * width)), vf)
        big = builder.fmul(_max(builder, e, norm), magic)
        big_bits = builder.bitcast(big, vi)
        code = builder.add(builder.sub(builder.bitcast(builder.fadd(a, big), vi), big_bits),
                           builder.lshr(builder.sub(big_bits, low), shift))
        code = builder.or_(code, builder.and_(builder.lshr(bits, sign_shift), sign_bit))
        store_codes(context, builder, sig.args[8], outa, at0, code, width, mode)
        return context.get_dummy_value()
    return types.none(x, base, n, d, d_hi, divide, fp, up, out, at, pack), codegen


@intrinsic
def int_codes(typingctx, x, base, n, d, fixed, qmax, out, at):
    """``clip(rint((x[base:base + n] * d) * fixed), -qmax, qmax)`` as int8 codes at
    ``out[at]`` (uint8; the current rounding mode: half to even under
    ``FP_NEAREST_EVEN``), ``n`` a compile-time constant."""
    if not (contiguous(x, out) and x.dtype == types.float32 and literal(n)
            and out.dtype == types.uint8):
        return None
    width = literal(n)

    def codegen(context, builder, sig, args):
        xs, b0, _, dv, fx, qm, outa, at0 = args
        vf = ir.VectorType(_F32, width)

        def arg(k):
            return splat(builder, scalar_as(context, builder, args[k], sig.args[k],
                                            types.float32), width)
        xv = builder.load(vector_at(context, builder, sig.args[0], xs, b0, _F32, width),
                          align=4)
        q = builder.fmul(builder.fmul(xv, arg(3)), arg(4))
        rint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vf, [vf]),
                                              f"llvm.rint.v{width}f32")
        q = builder.call(rint, [q])
        top = arg(5)
        q = _max(builder, q, builder.fneg(top))
        q = _min(builder, q, top)
        codes = builder.trunc(builder.fptosi(q, ir.VectorType(_I32, width)),
                              ir.VectorType(_I8, width))
        builder.store(codes, vector_at(context, builder, sig.args[6], outa, at0, _I8, width),
                      align=1)
        return context.get_dummy_value()
    return types.none(x, base, n, d, fixed, qmax, out, at), codegen


def store_values(context, builder, outty, out, at, values, width, nontemporal):
    """Store ``<width x float>`` at ``out[at]``: a non-temporal store (``out[at]``
    64-byte aligned: the caller's to ensure) or a plain unaligned one."""
    ptr = vector_at(context, builder, outty, out, at, _F32, width)
    if not nontemporal:
        builder.store(values, ptr, align=4)
        return
    store = builder.store(values, ptr, align=64)
    store.set_metadata("nontemporal", builder.module.add_metadata([_I32(1)]))


def values_ok(codes, n, out, nontemporal):
    return (contiguous(codes, out) and codes.dtype == types.uint8 and literal(n)
            and isinstance(out, types.Array) and out.dtype == types.float32
            and isinstance(nontemporal, types.BooleanLiteral))


@intrinsic
def float_values(typingctx, codes, base, n, shift, up, scale, special_min, out, at,
                 nontemporal):
    """``value(code) * up * scale`` of the float codes ``codes[base:base + n]`` (uint8)
    into ``out[at:at + n]`` (float32): a code's magnitude bits (``& 0x7F``) shifted left
    by ``shift`` into a float32's exponent and mantissa fields, with its sign (bit 7),
    read as the code's value over ``up`` (exactly; see ``microscale.mx_decode``).
    Returns whether a code's magnitude bits reach ``special_min`` (inf or NaN codes,
    whose lanes are then wrong).  ``nontemporal``: non-temporal stores (``out[at]``
    64-byte aligned)."""
    if not values_ok(codes, n, out, nontemporal):
        return None
    width, nt = literal(n), nontemporal.literal_value

    def codegen(context, builder, sig, args):
        cs, b0, _, sh, upv, sc, smin, outa, at0, _ = args
        vi = ir.VectorType(_I32, width)
        h = builder.zext(builder.load(vector_at(context, builder, sig.args[0], cs, b0, _I8,
                                                 width), align=1), vi)
        mag = builder.and_(h, ir.Constant(vi, [0x7F] * width))
        shift = splat(builder, scalar_as(context, builder, sh, sig.args[3], types.uint32), width)
        sign = builder.shl(builder.and_(h, ir.Constant(vi, [0x80] * width)),
                           ir.Constant(vi, [24] * width))
        v = builder.bitcast(builder.or_(builder.shl(mag, shift), sign),
                            ir.VectorType(_F32, width))
        for k in (4, 5):  # (times up, then times the scale: two roundings, as the loop's)
            v = builder.fmul(v, splat(builder, scalar_as(context, builder, args[k], sig.args[k],
                                                        types.float32), width))
        store_values(context, builder, sig.args[7], outa, at0, v, width, nt)
        limit = splat(builder, scalar_as(context, builder, smin, sig.args[6], types.uint32),
                       width)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(1), [ir.VectorType(ir.IntType(1), width)]),
            f"llvm.vector.reduce.or.v{width}i1")
        return builder.call(fn, [builder.icmp_unsigned(">=", mag, limit)])
    return types.boolean(codes, base, n, shift, up, scale, special_min, out, at,
                         nontemporal), codegen


@intrinsic
def int_values(typingctx, codes, base, n, up, scale, out, at, nontemporal):
    """``int8(code) * up * scale`` of ``codes[base:base + n]`` into ``out[at:at + n]``."""
    if not values_ok(codes, n, out, nontemporal):
        return None
    width, nt = literal(n), nontemporal.literal_value

    def codegen(context, builder, sig, args):
        cs, b0, _, upv, sc, outa, at0, _ = args
        vf = ir.VectorType(_F32, width)
        h = builder.load(vector_at(context, builder, sig.args[0], cs, b0, _I8, width), align=1)
        v = builder.sitofp(h, vf)
        for k in (3, 4):
            v = builder.fmul(v, splat(builder, scalar_as(context, builder, args[k], sig.args[k],
                                                        types.float32), width))
        store_values(context, builder, sig.args[5], outa, at0, v, width, nt)
        return context.get_dummy_value()
    return types.none(codes, base, n, up, scale, out, at, nontemporal), codegen


def _umax(builder, a, b):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(a.type, [a.type, a.type]),
                                        f"llvm.umax.v{a.type.count}i32")
    return builder.call(fn, [a, b])


def _tops_of_eight(context, builder, arrty, x, base, width):
    """``<8 x i32>``: lane ``j`` the largest magnitude bits of block ``j`` of the eight
    blocks of ``width`` at ``x[base]``.  Each block is first folded to eight lanes, then
    the eight vectors are reduced together by a butterfly (three rounds of two shuffles
    and a max), where one reduction a block would take three rounds each."""
    v8 = ir.VectorType(_I32, 8)
    vecs, labels = [], []
    for j in range(8):
        at = builder.add(base, ir.Constant(base.type, j * width))
        v = builder.load(vector_at(context, builder, arrty, x, at, _I32, width), align=4)
        v = builder.and_(v, ir.Constant(ir.VectorType(_I32, width), [0x7FFFFFFF] * width))
        parts = [builder.shuffle_vector(v, v, ir.Constant(v8, list(range(k, k + 8))))
                 for k in range(0, width, 8)]
        while len(parts) > 1:
            parts = [_umax(builder, parts[k], parts[k + 1]) for k in range(0, len(parts), 2)]
        vecs.append(parts[0])
        labels.append([j] * 8)
    rounds = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]), \
             ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]), \
             ([0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15])
    for first, second in rounds:
        merged, merged_labels = [], []
        for k in range(0, len(vecs), 2):
            a, b = vecs[k], vecs[k + 1]
            both = labels[k] + labels[k + 1]
            la, lb = [both[i] for i in first], [both[i] for i in second]
            assert la == lb  # (lanes of the same block meet in the max)
            merged.append(_umax(builder, builder.shuffle_vector(a, b, ir.Constant(v8, first)),
                                builder.shuffle_vector(a, b, ir.Constant(v8, second))))
            merged_labels.append(la)
        vecs, labels = merged, merged_labels
    order = [labels[0].index(j) for j in range(8)]
    return builder.shuffle_vector(vecs[0], vecs[0], ir.Constant(v8, order))


@intrinsic
def e8m0_scales(typingctx, x, base, width, emax, exps, at, scale, scale_at):
    """For the eight blocks of ``width`` float32 at ``x[base]``: the OCP E8M0 codes
    ``clip(floor(log2(amax)) - emax, -127, 127) + 127`` (0xFF: inf or NaN in the block;
    an all-zero block reads as the smallest normal) into ``exps[at:at + 8]`` (uint8),
    and ``2**-e`` into ``scale[scale_at:scale_at + 8]`` (float32; any value for 0xFF),
    as ``microscale._e8m0`` and ``_power_bits`` compute them one block at a time."""
    if not (contiguous(x, exps, scale) and x.dtype == types.float32 and literal(width)
            and exps.dtype == types.uint8
            and isinstance(scale, types.Array) and scale.dtype == types.float32):
        return None
    w = literal(width)

    def codegen(context, builder, sig, args):
        xs, b0, _, em, ex, at0, sc, sat = args
        v8, f8 = ir.VectorType(_I32, 8), ir.VectorType(_F32, 8)

        def const(value):
            return ir.Constant(v8, [value] * 8)
        top = _tops_of_eight(context, builder, sig.args[0], xs,
                             scalar_as(context, builder, b0, sig.args[1], types.intp), w)
        # floor(log2(amax)): the exponent field; for a subnormal amax the exponent of its
        # integer significand converted to float32 (exact below 2**24), less 149
        normal = builder.sub(builder.lshr(top, const(23)), const(127))
        sub = builder.sub(builder.lshr(builder.bitcast(builder.sitofp(top, f8), v8), const(23)),
                          const(127 + 149))
        flog = builder.select(builder.icmp_unsigned(">=", top, const(0x00800000)), normal,
                              builder.select(builder.icmp_unsigned("==", top, const(0)),
                                             const(-126), sub))
        e = builder.sub(flog, splat(builder, scalar_as(context, builder, em, sig.args[3],
                                                      types.int32), 8))
        e = builder.select(builder.icmp_signed("<", e, const(-127)), const(-127), e)
        e = builder.select(builder.icmp_signed(">", e, const(127)), const(127), e)
        code = builder.select(builder.icmp_unsigned(">=", top, const(0x7F800000)), const(255),
                              builder.add(e, const(127)))
        builder.store(builder.trunc(code, ir.VectorType(_I8, 8)),
                      vector_at(context, builder, sig.args[4], ex, at0, _I8, 8), align=1)
        k = builder.sub(const(127), code)  # (-e; -128 for 0xFF: any scale)
        power = builder.select(builder.icmp_signed(">=", k, const(-126)),
                               builder.shl(builder.add(k, const(127)), const(23)),
                               const(0x00400000))  # (2**-127, a float32 subnormal)
        builder.store(builder.bitcast(power, f8),
                      vector_at(context, builder, sig.args[6], sc, sat, _F32, 8), align=4)
        return context.get_dummy_value()
    return types.none(x, base, width, emax, exps, at, scale, scale_at), codegen


@intrinsic
def nvfp4_scales(typingctx, x, base, tensor_scale, scales, at, total, total_at):
    """For the eight blocks of 16 float32 at ``x[base]``, torchao's NVFP4 block scales in
    its float32 steps, lane-wise: ``v = min(max((amax / 6) / tensor_scale, 2**-6), 448)``,
    its E4M3 code (round half to even: ``v`` is a normal E4M3 magnitude, so the
    float32 bits rounded to three mantissa bits are the code's value) into
    ``scales[at:at + 8]`` (uint8), and ``tensor_scale * value`` into
    ``total[total_at:total_at + 8]`` (float32).  Finite blocks only."""
    if not (contiguous(x, scales, total) and x.dtype == types.float32
            and scales.dtype == types.uint8
            and isinstance(total, types.Array) and total.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        xs, b0, ts, sc, at0, tot, tat = args
        v8, f8 = ir.VectorType(_I32, 8), ir.VectorType(_F32, 8)

        def const(value):
            return ir.Constant(v8, [value] * 8)

        def fconst(value):
            return ir.Constant(f8, [value] * 8)
        top = _tops_of_eight(context, builder, sig.args[0], xs,
                             scalar_as(context, builder, b0, sig.args[1], types.intp), 16)
        scale = splat(builder, scalar_as(context, builder, ts, sig.args[2], types.float32), 8)
        v = builder.fdiv(builder.fdiv(builder.bitcast(top, f8), fconst(6.0)), scale)
        v = _min(builder, _max(builder, v, fconst(2.0 ** -6)), fconst(448.0))
        b = builder.bitcast(v, v8)
        odd = builder.and_(builder.lshr(b, const(20)), const(1))
        r = builder.add(builder.add(b, const(0x7FFFF)), odd)
        code = builder.sub(builder.lshr(r, const(20)), const(120 << 3))
        builder.store(builder.trunc(code, ir.VectorType(_I8, 8)),
                      vector_at(context, builder, sig.args[3], sc, at0, _I8, 8), align=1)
        value = builder.bitcast(builder.and_(r, const(-(1 << 20))), f8)
        builder.store(builder.fmul(scale, value),
                      vector_at(context, builder, sig.args[5], tot, tat, _F32, 8), align=4)
        return context.get_dummy_value()
    return types.none(x, base, tensor_scale, scales, at, total, total_at), codegen


@intrinsic
def prefetch_lines(typingctx, a, i, nbytes):
    """Ask for the cache lines of ``nbytes`` (a compile-time constant) from ``a[i]`` on."""
    if contiguous(a) and literal(nbytes):
        count = literal(nbytes) // 64

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            i8p = ir.IntType(8).as_pointer()
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]),
                "llvm.prefetch.p0")
            start = builder.bitcast(builder.gep(data, [args[1]]), i8p)
            for k in range(count):
                builder.call(fn, [builder.gep(start, [_I32(64 * k)]), _I32(0), _I32(3), _I32(1)])
            return context.get_dummy_value()
        return types.none(a, i, nbytes), codegen
    return None
