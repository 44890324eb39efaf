"""The linear quantize kernels compile one specialization per kind of output, not per
code dtype or per caller: signed codes run through their unsigned view, and kernels
call each other with int64/bool values, never literals (a literal argument types as
``Literal[int](1)`` and compiles the callee again; the per-column kernel is ~20 s of
compiling each time).  Bit-exactness of the unsigned view is what every quantize test
checks; these tests pin the count."""
import numpy as np
from numba import types

import fastq as fq
from fastq.kernels.cpu.linear import rowcalls, rows, tensor


def _run_every_code_dtype():
    x = np.linspace(-3, 3, 8 * 64, dtype=np.float32).reshape(8, 64)
    for dtype in ("int8", "uint8", "int4", "uint4", "int16", "uint16"):
        for g in ("tensor", fq.PerChannel(0), fq.PerChannel(-1), fq.PerGroup(32)):
            for scheme in ("asymmetric", "symmetric"):
                qt = fq.quantize(x, dtype, scheme=scheme, granularity=g)
                again = fq.quantize(x, dtype, scheme=scheme, granularity=g, scale=qt.scale,
                                    zero_point=qt.zero_point)
                assert np.array_equal(np.asarray(again.data), np.asarray(qt.data))


def _array_args(sig):
    return [a for a in sig if isinstance(a, types.Array)]


def test_kernels_see_no_signed_codes_and_no_literals():
    _run_every_code_dtype()
    kernels = (rows.quantize_columns, rows.quantize_rows, rowcalls._quantize_channels_serial,
               tensor._dynamic_serial)
    for kernel in kernels:
        assert kernel.signatures, kernel
        for sig in kernel.signatures:
            assert not any(isinstance(a, types.Literal) for a in sig), (kernel, sig)
            dtypes = {a.dtype for a in _array_args(sig)}
            assert not dtypes & {types.int8, types.int16}, (kernel, sig)
    # codes of every dtype above: 8-bit and 16-bit views (4-bit: uint8), one each
    out_dtypes = {sig[9].dtype for sig in rows.quantize_columns.signatures}
    assert out_dtypes <= {types.uint8, types.uint16, types.float32}
