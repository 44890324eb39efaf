"""One-pass error statistics of ``x_hat`` against ``x`` (CUDA twin of ``fastq.kernels.cpu.metrics``).

Bit-identical to the CPU, so the summation order is the CPU's: the same chunks
(``fastq.kernels.cpu.parallel.chunk_bounds``, a pure function of the size), element ``i`` of a
chunk into partial sum ``i % LANES`` in increasing order (a chunk's tail after its whole
groups), then on the host the lanes added in order and the chunks summed as the CPU does.
One GPU thread owns one (chunk, lane) accumulator: at most ``MAX_CHUNKS * LANES`` threads,
so this reduction trades GPU bandwidth for exact agreement with the CPU.

Products feed adds here (``s += a * b``), and NVVM contracts such pairs into FMAs whatever
the ``fastmath`` flag (numba.cuda passes no ``-fma=0``): ``_mul`` is libdevice's
``dmul_rn`` (PTX ``mul.rn.f64``, which is never fused), so every product rounds as on the CPU.
"""
import numpy as np
from numba import cuda

from ...core.layout import ALIGN, LANES, N_SUMS, SERIAL_BELOW, n_chunks
from . import SIMULATOR, launch

U64 = np.uint64


if SIMULATOR:  # the simulator runs Python: plain float64 arithmetic, bits through NumPy
    @cuda.jit(device=True)
    def _mul(a, b):
        return a * b

    @cuda.jit(device=True)
    def _bits(v):
        return np.array([v], np.float64).view(np.uint64)[0]
else:
    from numba.cuda import libdevice

    @cuda.jit(device=True, cache=True)
    def _mul(a, b):
        """``a * b`` rounded to float64 on its own (``mul.rn``: never fused into an FMA)."""
        return libdevice.dmul_rn(a, b)

    @cuda.jit(device=True, cache=True)
    def _bits(v):
        return U64(libdevice.double_as_longlong(v))


@cuda.jit(cache=True)
def _lanes_kernel(x, x_hat, nchunks, sums, keys):
    n = x.size
    for t in range(cuda.grid(1), nchunks * LANES, cuda.gridsize(1)):
        c, j = t // LANES, t % LANES
        step = (n + nchunks - 1) // nchunks
        step = (step + ALIGN - 1) // ALIGN * ALIGN
        start = min(c * step, n)
        stop = min(start + step, n)
        s0 = s1 = s2 = s3 = s4 = 0.0
        key = U64(0)
        # lane j: the chunk's elements start + j + LANES * m in order; the CPU sends the
        # whole groups there and then the tail element full + j, the same sequence
        for i in range(start + j, stop, LANES):
            a, b = np.float64(x[i]), np.float64(x_hat[i])
            e = a - b
            ae = abs(e)
            s0 += ae
            s1 += _mul(e, e)
            s2 += _mul(a, a)
            s3 += _mul(b, b)
            s4 += _mul(a, b)
            key = max(key, _bits(ae))
        sums[c, 0, j], sums[c, 1, j], sums[c, 2, j] = s0, s1, s2
        sums[c, 3, j], sums[c, 4, j], keys[c, j] = s3, s4, key


def error_stats(x, x_hat):
    """The six statistics of ``fastq.kernels.cpu.metrics.error_sums`` for 1-D device arrays."""
    nchunks = 1 if x.size < SERIAL_BELOW else n_chunks(x.size)
    sums = cuda.device_array((nchunks, N_SUMS - 1, LANES), np.float64)
    keys = cuda.device_array((nchunks, LANES), np.uint64)
    blocks, threads = launch(nchunks * LANES)
    _lanes_kernel[blocks, threads](x, x_hat, nchunks, sums, keys)
    sums, keys = sums.copy_to_host(), keys.copy_to_host()
    partial = np.empty((nchunks, N_SUMS))
    total = np.zeros((nchunks, N_SUMS - 1))
    for j in range(LANES):  # lanes in order, as the CPU kernel adds them
        total += sums[:, :, j]
    partial[:, :5] = total
    partial[:, 5] = keys.max(axis=1).view(np.float64)
    if nchunks == 1:
        return partial[0]
    out = partial.sum(axis=0)  # chunk order, as the CPU
    out[5] = partial[int(np.argmax(partial[:, 5].view(np.uint64))), 5]
    return out
