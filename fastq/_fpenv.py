"""Every public call runs in the IEEE default floating-point environment.

A shared library built with -ffast-math sets flush-to-zero and denormals-are-zero in
the x86 control register (MXCSR) of the thread that loads it, and a caller may change
the rounding mode; NumPy's arithmetic on scales and ranges, and the kernels, would then
give other bits.  ``ieee_default`` loads the default word (round half to even, no
flushing, exceptions masked) in the calling thread for the duration of the call and
restores the caller's.  Kernels that run on Numba's worker threads set it themselves
(``fastq._cpu._word.swap_fp_control``).  Elsewhere than on x86 this does nothing.
"""
import functools

import numpy as np
from numba import njit

from ._cpu._word import FP_NEAREST_EVEN, swap_fp_control


@njit(cache=True)
def _swap(word):
    return swap_fp_control(word)


_DEFAULT = np.uint32(FP_NEAREST_EVEN)
_CONTROL = 0xFFC0  # the control bits of MXCSR; bits 0-5 are sticky exception flags


def ieee_default(fn):
    """Decorate a public function to run under the default floating-point environment."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        saved = int(_swap(_DEFAULT))
        if saved & _CONTROL == FP_NEAREST_EVEN:  # the usual case: nothing to restore (the
            return fn(*args, **kwargs)             # sticky flags aside: NumPy clears them)
        try:
            return fn(*args, **kwargs)
        finally:
            _swap(np.uint32(saved))
    return call
