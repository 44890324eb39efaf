"""Integer arithmetic that stays in the operands' own width.

Numba types ``uint32 + uint32`` as uint64 (Python semantics), so a loop over float32
bits would run in 64-bit vector lanes, at half the throughput or worse, and shifts by a
runtime amount cannot be narrowed back by LLVM.  These intrinsics emit the plain LLVM
instruction on two operands of the same integer type and keep that type, so the
vectorizer uses 16 or 32-bit lanes.  ``like(x, v)`` converts ``v`` to ``x``'s type;
``as_float(x)`` reinterprets 32/64-bit integer bits as float32/float64, ``as_bits``
the other way.
Semantics are LLVM's: unsigned wrap-around; shift amounts must be below the width.

``prefetch(a, i)`` asks for the cache line of ``a[i]``.  Streaming kernels on data
that sits in a large L3 can spend as long waiting for loads as they compute;
prefetching the input a few KB ahead overlaps the two.

``half_bits`` / ``half_value`` are float16 in plain integer arithmetic, for bits that must
not depend on the CPU's conversion instruction (GGML block scales: NumPy's rounding).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

# (the FP-control and thread-count intrinsics live with the process state they change)
from ...runtime.fpenv import X86, FP_NEAREST_EVEN, FP_TOWARD_ZERO, swap_fp_control  # noqa: F401
from ...runtime.threads import set_thread_count  # noqa: F401


def _binop(method):
    @intrinsic
    def op(typingctx, a, b):
        if isinstance(a, types.Integer) and a == b:
            def codegen(context, builder, sig, args):
                return getattr(builder, method)(*args)
            return a(a, b), codegen
        return None
    op.__name__ = method.rstrip("_")
    return op


add = _binop("add")
sub = _binop("sub")
mul = _binop("mul")
shr = _binop("lshr")
shl = _binop("shl")
band = _binop("and_")
bor = _binop("or_")
bxor = _binop("xor")


@intrinsic
def as_float(typingctx, x):
    """The float32 (uint32 bits) or float64 (uint64 bits) with the bits of ``x``."""
    if isinstance(x, types.Integer) and x.bitwidth in (32, 64):
        ftype = types.float32 if x.bitwidth == 32 else types.float64

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(ftype))
        return ftype(x), codegen
    return None


@intrinsic
def as_bits(typingctx, f):
    """The bits of a float32 (as uint32) or float64 (as uint64)."""
    if isinstance(f, types.Float) and f.bitwidth in (32, 64):
        itype = types.uint32 if f.bitwidth == 32 else types.uint64

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(itype))
        return itype(f), codegen
    return None


@intrinsic
def bit_width(typingctx, x):
    """The bit width of ``x``'s integer type, as a compile-time constant."""
    if isinstance(x, types.Integer):
        def codegen(context, builder, sig, args):
            return context.get_constant(types.intp, sig.args[0].bitwidth)
        return types.intp(x), codegen
    return None


@intrinsic
def like(typingctx, x, v):
    """``v`` (an integer or bool) converted to the integer type of ``x``."""
    if isinstance(x, types.Integer) and isinstance(v, (types.Integer, types.Boolean)):
        def codegen(context, builder, sig, args):
            return context.cast(builder, args[1], sig.args[1], sig.return_type)
        return x(x, v), codegen
    return None


def _prefetch_helps():
    """Whether software prefetching speeds up the streaming kernels on the CPU Numba
    compiles for: not on CPUs LLVM names ``znver*``, whose hardware prefetchers keep up
    on their own (there the extra instructions only cost, at any prefetch distance);
    elsewhere it hides load latency.  Cached code is keyed by the CPU name, so the
    choice made at compile time always matches the CPU it runs on."""
    import llvmlite.binding as llvm
    from numba import config
    name = config.CPU_NAME if config.CPU_NAME not in (None, "host") else \
        llvm.get_host_cpu_name()
    return not name.startswith("znver")


_PREFETCH = _prefetch_helps()


@intrinsic
def prefetch(typingctx, a, i):
    """Hint the CPU to load the cache line holding ``a[i]`` (1-D contiguous ``a``); no
    code where that does not help (``_prefetch_helps``)."""
    if isinstance(a, types.Array) and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            if not _PREFETCH:
                return context.get_dummy_value()
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0")
            ptr = builder.bitcast(builder.gep(data, [args[1]]), i8p)
            builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep, data cache
            return context.get_dummy_value()
        return types.none(a, i), codegen
    return None


@njit(cache=True, nogil=True, inline="always")
def prefetch_span(a, start, n):
    """Prefetch ``a[start:start + n]`` (clipped to ``a``), one call per 64-byte line."""
    step = max(64 // a.itemsize, 1)
    for j in range(start, min(start + n, a.size), step):
        prefetch(a, j)


@njit(cache=True, nogil=True)
def prefetch_ahead(a, start, block):
    """Prefetch ``a[start + 4 * block : start + 5 * block]``: the block 4 blocks ahead."""
    prefetch_span(a, start + 4 * block, block)


@intrinsic
def float16_bits(typingctx, x):
    """The IEEE binary16 bits (uint16) of the float32 or float64 ``x``, rounded once by
    the CPU's conversion instruction (x86: F16C ``vcvtps2ph``, AVX512-FP16 ``vcvtpd2ph``;
    only where it exists: see ``fastq.kernels.cpu.cast.native_float16``) in the rounding mode
    of the floating-point control word (``swap_fp_control``).  NaNs come out quiet,
    unlike NumPy's."""
    if isinstance(x, types.Float) and x.bitwidth in (32, 64):
        def codegen(context, builder, sig, args):
            return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
        return types.uint16(x), codegen
    return None


@intrinsic
def float16_value(typingctx, h):
    """The float32 value of the IEEE binary16 bits ``h`` (uint16), widened by the CPU's
    conversion instruction (exact; x86 F16C ``vcvtph2ps``).  NaNs come out quiet."""
    if isinstance(h, types.Integer) and h.bitwidth == 16:
        def codegen(context, builder, sig, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        return types.float32(h), codegen
    return None


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (IEEE fusedMultiplyAdd; x86 ``vfmadd``), for three
    floats of one type.  LLVM never forms one from ``a * b + c`` without fastmath."""
    if isinstance(a, types.Float) and a == b == c:
        def codegen(context, builder, sig, args):
            return builder.fma(*args)
        return a(a, b, c), codegen
    return None


# x86 MXCSR: all exceptions masked, no flush-to-zero, no denormals-are-zero, and the
# rounding control (bits 13-14): half to even or toward zero.
@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorize the calling kernel with 512-bit registers where the CPU has them
    (its tuning for AVX-512 CPUs otherwise stops at 256 bits)."""
    def codegen(context, builder, sig, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def unmanaged(typingctx, a):
    """``a`` without its reference count (meminfo and parent NULL).

    Every view Numba makes of an array (``a[i]`` of a 2-D array, a slice) increments and
    later decrements the owner's reference count with atomic instructions, which in a
    loop over short rows costs more than the arithmetic (and threads slicing the same
    array fight over that cache line).  Views of an unmanaged array skip both.  ``a``
    must outlive everything made from it: use it on kernel arguments only.
    """
    if isinstance(a, types.Array):
        def codegen(context, builder, sig, args):
            src = context.make_array(sig.args[0])(context, builder, args[0])
            dst = context.make_array(sig.return_type)(context, builder)
            for field in ("data", "shape", "strides", "itemsize", "nitems"):
                setattr(dst, field, getattr(src, field))
            dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
            dst.parent = cgutils.get_null_value(dst.parent.type)
            return dst._getvalue()
        return a(a), codegen
    return None


# ---------------------------------------------------------------- non-temporal stores
# A store to a cache line that is not in cache first reads the line (read for
# ownership): writing N bytes of a large output moves 2N.  Non-temporal stores of whole
# 64-byte lines skip that read, so a streaming kernel computes a block into a buffer on
# the stack (``local_block``, in L1) and writes it out with ``stream_out``.  They bypass
# the caches, so only outputs much larger than the cache take this path.


@intrinsic
def local_block(typingctx, a, n):
    """A 1-D array of ``a``'s dtype with room for ``n`` (a compile-time constant)
    elements, on the calling function's stack (valid until it returns; not zeroed)."""
    if isinstance(a, types.Array) and isinstance(n, types.IntegerLiteral):
        ret = types.Array(a.dtype, 1, "C")

        def codegen(context, builder, sig, args):
            count = sig.args[1].literal_value
            elem = context.get_data_type(a.dtype)
            with builder.goto_entry_block():  # (once per call, not per loop trip)
                slot = builder.alloca(ir.ArrayType(elem, count))
                slot.align = 64
            data = builder.bitcast(slot, elem.as_pointer())
            out = context.make_array(ret)(context, builder)
            itemsize = context.get_abi_sizeof(elem)
            intp = context.get_value_type(types.intp)
            populate_array(out, data=data, shape=[intp(count)], strides=[intp(itemsize)],
                           itemsize=intp(itemsize), meminfo=None)
            return out._getvalue()
        return ret(a, n), codegen
    return None


@intrinsic
def address(typingctx, a, i):
    """The address of ``a[i]`` (1-D contiguous ``a``) as an integer."""
    if isinstance(a, types.Array) and isinstance(i, types.Integer):
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            return builder.ptrtoint(builder.gep(data, [args[1]]),
                                    context.get_value_type(types.uintp))
        return types.uintp(a, i), codegen
    return None


@intrinsic
def stream_line(typingctx, dst, i, src, j):
    """Copy the 64 bytes from ``src[j]`` on to ``dst[i]`` on, which must be 64-byte
    aligned, with a non-temporal store (``store_fence`` orders it)."""
    if isinstance(dst, types.Array) and isinstance(src, types.Array):
        def codegen(context, builder, sig, args):
            d = context.make_array(sig.args[0])(context, builder, args[0]).data
            s = context.make_array(sig.args[2])(context, builder, args[2]).data
            line = ir.VectorType(ir.IntType(32), 16)
            value = builder.load(builder.bitcast(builder.gep(s, [args[3]]), line.as_pointer()),
                                 align=1)
            store = builder.store(value, builder.bitcast(builder.gep(d, [args[1]]),
                                                         line.as_pointer()), align=64)
            store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
            return context.get_dummy_value()
        return types.none(dst, i, src, j), codegen
    return None


@intrinsic
def store_fence(typingctx):
    """Order this thread's non-temporal stores before its later stores (x86 ``sfence``)."""
    def codegen(context, builder, sig, args):
        if X86:
            fty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fty,
                                                        "llvm.x86.sse.sfence"), [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.none(), codegen


@njit(cache=True, nogil=True, inline="always")
def stream_out(dst, block):
    """``dst[:] = block``: whole 64-byte lines of ``dst`` by non-temporal stores, the
    partial lines at either end by plain ones."""
    n = dst.size
    per_line = 64 // dst.itemsize
    misalign = address(dst, 0) % 64
    head = n if misalign % dst.itemsize else min(n, (64 - misalign) % 64 // dst.itemsize)
    body = head + (n - head) // per_line * per_line
    for j in range(head):
        dst[j] = block[j]
    for j in range(head, body, per_line):
        stream_line(dst, j, block, j)
    for j in range(body, n):
        dst[j] = block[j]


@njit(cache=True, nogil=True, inline="always")
def finish_stream(stream):
    """End a kernel that may have streamed (``stream_out``): fence its stores."""
    if stream:
        store_fence()


@intrinsic
def is_float(typingctx, a):
    """Whether the array ``a`` holds floats, as a compile-time constant: a branch on it
    is gone before LLVM optimizes, so each compiled kernel carries only its own loops."""
    if isinstance(a, types.Array):
        def codegen(context, builder, sig, args):
            return context.get_constant(types.boolean, isinstance(sig.args[0].dtype,
                                                                  types.Float))
        return types.boolean(a), codegen
    return None


# float16 as plain integer arithmetic, where the bits must not depend on the CPU's
# conversion instruction (GGML block scales: NumPy's rounding, NaN 0x7e00)
@njit(cache=True, nogil=True, inline="always")
def half_bits(f):
    """IEEE binary16 bits of the float32 ``f``, rounded half to even (NumPy's
    ``astype(np.float16)``); 0x7c00 (inf, with sign) from 65520 up; NaN 0x7e00."""
    u = np.int64(as_bits(f))
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a > 0x7F800000:
        return sign | 0x7E00
    if a >= 0x477FF000:  # 65520: rounds to inf
        return sign | 0x7C00
    if a < 0x38800000:  # below 2**-14: a subnormal half; the float add rounds it (RNE)
        magic = as_float(np.uint32(0x3F000000))  # 0.5: aligns 2**-24 with the last bit
        r = np.int64(as_bits(as_float(np.uint32(a)) + magic)) - 0x3F000000
        return sign | r
    mant_odd = (a >> 13) & 1
    a = a + (((15 - 127) << 23) + 0xFFF) + mant_odd
    return sign | (a >> 13)


@njit(cache=True, nogil=True, inline="always")
def half_value(h):
    """The float32 value of the binary16 bits ``h`` (exact)."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:  # zero or subnormal: m * 2**-24, exact in float32
        v = np.float32(m) * np.float32(5.9604644775390625e-08)
        return -v if sign else v
    if e == 31:
        return as_float(np.uint32(sign | 0x7F800000 | (m << 13)))
    return as_float(np.uint32(sign | ((e + 112) << 23) | (m << 13)))


@njit(cache=True, nogil=True, inline="always")
def put_half(out, o, bits):
    out[o] = bits & 0xFF
    out[o + 1] = (bits >> 8) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def get_half(data, o):
    return half_value(np.int64(data[o]) | (np.int64(data[o + 1]) << 8))
