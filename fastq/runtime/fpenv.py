"""Every public call runs in the IEEE default floating-point environment.

A shared library built with -ffast-math sets flush-to-zero and denormals-are-zero in
the x86 control register (MXCSR) of the thread that loads it, and a caller may change
the rounding mode; NumPy's arithmetic on scales and ranges, and the kernels, would then
give other bits.  ``ieee_default`` loads the default word (round half to even, no
flushing, exceptions masked) in the calling thread for the duration of the call and
restores the caller's.  Kernels that run on Numba's worker threads set it themselves
(``fastq.runtime.fpenv.swap_fp_control``).  Elsewhere than on x86 this does nothing.
"""
import functools

import numpy as np
import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic



FP_NEAREST_EVEN = 0x1F80
FP_TOWARD_ZERO = 0x7F80
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def swap_fp_control(typingctx, word):
    """Load ``word`` (uint32) into the x86 floating-point control register (MXCSR) of the
    calling thread and return the word it held, to be restored the same way.

    The conversion instructions behind ``float16_bits`` round as MXCSR says, and its
    flush-to-zero / denormals-are-zero bits may have been set by any library in the
    process (a shared object built with -ffast-math sets them when it is loaded): a
    kernel that does float arithmetic sets the word it needs around its loop.  Elsewhere
    than on x86 this does nothing (and returns 0)."""
    if isinstance(word, types.Integer) and word.bitwidth == 32:
        def codegen(context, builder, sig, args):
            i32 = ir.IntType(32)
            if not X86:
                return i32(0)
            i8p = ir.IntType(8).as_pointer()
            fty = ir.FunctionType(ir.VoidType(), [i8p])
            slot = cgutils.alloca_once(builder, i32)
            ptr = builder.bitcast(slot, i8p)
            builder.call(cgutils.get_or_insert_function(builder.module, fty,
                                                        "llvm.x86.sse.stmxcsr"), [ptr])
            old = builder.load(slot)
            builder.store(args[0], slot)
            builder.call(cgutils.get_or_insert_function(builder.module, fty,
                                                        "llvm.x86.sse.ldmxcsr"), [ptr])
            return old
        return types.uint32(word), codegen
    return None


@njit(cache=True)
def _swap(word):
    return swap_fp_control(word)


_DEFAULT = np.uint32(FP_NEAREST_EVEN)
_CONTROL = 0xFFC0  # the control bits of MXCSR; bits 0-5 are sticky exception flags
# ``_swap``'s compiled code for a uint32 word, loaded on the first public call (from the
# on-disk cache, or compiled): calling it skips the dispatcher's type resolution, which
# is most of this wrapper's cost (~0.6 of ~0.9 us) on every public call.
_swap_code = None


def _load_swap():
    global _swap_code
    _swap_code = _swap.compile((types.uint32,))
    return _swap_code


def ieee_default(fn):
    """Decorate a public function to run under the default floating-point environment."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        swap = _swap_code or _load_swap()
        saved = swap(_DEFAULT)  # (an int)
        if saved & _CONTROL == FP_NEAREST_EVEN:  # the usual case: nothing to restore (the
            return fn(*args, **kwargs)             # sticky flags aside: NumPy clears them)
        try:
            return fn(*args, **kwargs)
        finally:
            swap(np.uint32(saved))
    return call
