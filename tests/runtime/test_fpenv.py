"""Results do not depend on the caller's floating-point environment (``fastq.runtime.fpenv``):
flush-to-zero, denormals-are-zero and a directed rounding mode in the calling thread
(as a library built with -ffast-math leaves them), or in Numba's worker threads, which
inherit the word of the thread that starts them."""
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="x86 MXCSR")

HOSTILE = 0x1F80 | 0x8040 | 0x4000  # flush-to-zero, denormals-are-zero, round up

CALLS = textwrap.dedent("""
    import hashlib
    import numpy as np
    import fastq as fq

    def calls(shape):
        # from bits, not arithmetic (which the hostile word would change)
        rng = np.random.default_rng(0)
        n = shape[0] * shape[1]
        exponent = rng.integers(118, 130, n).astype(np.uint32)  # |x| in [2**-9, 8)
        bits = (rng.integers(0, 2, n).astype(np.uint32) << 31) | (exponent << 23) | (
            rng.integers(0, 1 << 23, n).astype(np.uint32))
        bits[shape[1]:2 * shape[1]] &= 0x807FFFFF  # a row of subnormals
        bits[:4] = [0x3F000000, 0x3FC00000, 0x40200000, 0xBF000000]  # ties 0.5 1.5 2.5 -0.5
        x = bits.view(np.float32).reshape(shape)
        x_hat = (bits ^ 5).view(np.float32).reshape(shape)
        return {
            "static": lambda: fq.quantize(x, "int8", scale=np.float32(0.5)).data,
            "static tiny scale": lambda: fq.quantize(x, "int8", scale=np.float32(2e-38)).data,
            # a float64 scale that rounds down to float32 (by the kernel, on a call with
            # its plan cached: the second), with a zero point
            "static float scale": lambda: both(*[fq.quantize(x, "uint8", scale=0.7,
                                                             zero_point=3) for _ in range(2)]),
            "dynamic": lambda: fq.quantize(x, "uint8").data,
            # the second call from its plan (a kernel called outside ``ieee_default``)
            "dynamic planned": lambda: both(*[fq.quantize(x, "int8", scheme="symmetric")
                                              for _ in range(2)]),
            "per-channel scale": lambda: fq.quantize(x, "uint8", granularity=fq.PerChannel(0)).scale,
            # second calls from their plans (the kernels' prepared call, no ``ieee_default``)
            "per-channel planned": lambda: planned(x, fq.PerChannel(0)),
            "per-column planned": lambda: planned(x, fq.PerChannel(1)),
            "per-group planned": lambda: planned(x, fq.PerGroup(32)),
            "fake planned": lambda: fake_planned(x),
            "static per-channel planned": lambda: static_planned(x),
            # a float64 scale that rounds to float32 in Python on the prepared call
            "fake static per tensor planned": lambda: np.concatenate([
                fq.fake_quantize(x, "uint8", scale=s, zero_point=3)
                for s in (0.7, 0.7, np.array(0.3), np.array(0.3))]),
            "symmetric scale": lambda: fq.choose_qparams(x, "int8", scheme="symmetric").scale,
            "fake": lambda: fq.fake_quantize(x, "int8", granularity=fq.PerChannel(0)),
            "dequantize": lambda: fq.dequantize(fq.quantize(x, "int8", granularity=fq.PerChannel(0))),
            "metrics": lambda: np.array([fq.metrics(x, x_hat).mse, fq.metrics(x, x_hat).sqnr_db]),
            "cast": lambda: fq.cast(x, "bfloat16"),
        }

    def both(first, second):
        assert first.scale == second.scale and np.array_equal(first.data, second.data)
        return np.frombuffer(second.scale.tobytes() + second.data.tobytes(), np.uint8)

    def planned(x, granularity):
        first, second = [fq.quantize(x, "uint8", granularity=granularity) for _ in range(2)]
        for a, b in ((first.scale, second.scale), (first.zero_point, second.zero_point),
                     (first.data, second.data)):
            assert np.array_equal(a, b)
        return np.frombuffer(second.scale.tobytes() + second.zero_point.tobytes()
                             + second.data.tobytes(), np.uint8)

    def fake_planned(x):
        out = [fq.fake_quantize(x, "int8", granularity=g) for g in
               (fq.PerChannel(1), fq.PerChannel(1), "tensor", "tensor")]
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[2], out[3])
        return np.concatenate([out[1], out[3]])

    def static_planned(x):
        # given parameters (choose_qparams' own, computed in the default environment)
        qp = fq.choose_qparams(x, "uint8", granularity=fq.PerChannel(0))
        args = dict(granularity=fq.PerChannel(0), scale=qp.scale, zero_point=qp.zero_point)
        codes = [fq.quantize(x, "uint8", **args).data for _ in range(2)]
        fake = [fq.fake_quantize(x, "uint8", **args) for _ in range(2)]
        assert np.array_equal(codes[0], codes[1]) and np.array_equal(fake[0], fake[1])
        return np.frombuffer(codes[1].tobytes() + fake[1].tobytes(), np.uint8)

    def digests(shape):
        return {k: hashlib.sha1(np.ascontiguousarray(f()).tobytes()).hexdigest()
                for k, f in calls(shape).items()}
""")


def _swapper():
    from numba import njit

    from fastq.runtime.fpenv import swap_fp_control

    @njit
    def swap(word):
        return swap_fp_control(word)
    return lambda word: int(swap(np.uint32(word)))


def test_calling_thread(tmp_path):
    """Small inputs (serial kernels, this thread): same bits, caller's word restored."""
    namespace = {}
    exec(CALLS, namespace)
    swap = _swapper()
    want = namespace["digests"]((64, 96))
    saved = swap(HOSTILE)
    try:
        got = namespace["digests"]((64, 96))
        after = swap(saved)
    finally:
        swap(saved)
    assert after & ~0x3F == HOSTILE  # (the low 6 bits are sticky exception flags)
    assert got == want


def test_worker_threads():
    """Large inputs in a process whose every thread starts with the hostile word."""
    script = CALLS + textwrap.dedent(f"""
        import json, sys
        if sys.argv[1] == "hostile":
            from numba import njit
            from fastq.runtime.fpenv import swap_fp_control
            njit(lambda w: swap_fp_control(w))(np.uint32({HOSTILE}))
        print(json.dumps(digests((1024, 1030))))
    """)
    runs = [subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                           text=True, timeout=600) for mode in ("default", "hostile")]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
