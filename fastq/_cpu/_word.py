"""Integer arithmetic that stays in the operands' own width.

Numba types ``uint32 + uint32`` as uint64 (Python semantics), so a loop over float32
bits would run in 64-bit vector lanes, at half the throughput or worse, and shifts by a
runtime amount cannot be narrowed back by LLVM.  These intrinsics emit the plain LLVM
instruction on two operands of the same integer type and keep that type, so the
vectorizer uses 16 or 32-bit lanes.  ``like(x, v)`` converts ``v`` to ``x``'s type.
Semantics are LLVM's: unsigned wrap-around; shift amounts must be below the width.
"""
from numba import types
from numba.extending import intrinsic


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
def like(typingctx, x, v):
    """``v`` (any integer) converted to the integer type of ``x``."""
    if isinstance(x, types.Integer) and isinstance(v, types.Integer):
        def codegen(context, builder, sig, args):
            return context.cast(builder, args[1], sig.args[1], sig.return_type)
        return x(x, v), codegen
    return None
