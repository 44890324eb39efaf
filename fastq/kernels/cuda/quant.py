"""Linear quantization kernels (CUDA twin of ``fastq.kernels.cpu.quant``): same names, same math.

See ``fastq.kernels.cpu.quant`` for the interface.  ``x3`` / ``codes3`` / ``out3`` are device
arrays of the canonical ``(P, K, Q)`` view; ``scale3`` / ``zero3`` may be host or device
arrays of the grid shape (copied to the device when on the host); ``minmax`` writes its
per-block ranges into the host arrays ``out_min`` / ``out_max`` (small: one value per
block) and reports NaN / inf exactly as the CPU does.

Launches are 2-D grid-stride loops, x over the Q columns of a row (coalesced), y over
the ``P * K`` rows, so the input is read in memory order whatever the axis.

* ``minmax`` reduces the same order-preserving uint32 keys as the CPU: each thread keeps
  a running key min/max while its elements stay in one block and flushes it with
  ``cuda.atomic.min/max`` when the block changes (per-tensor: into one of ``LANES``
  partial slots, reduced on the host, to spread the atomics).  With NaN or ±inf present
  a second pass reduces the keys of the finite values only, starting from the key of 0.
* quantize: ``clip(rint(x / s) + z, qmin, qmax)``, the IEEE float32 division (no
  fastmath: numba.cuda's ``/`` is correctly rounded) and an exact round-half-even
  (``fastq.kernels.cuda.cast._rint``); NaN codes as ``z``.  dequantize: ``(q - z) * s``.  No
  product here feeds an add, so NVVM's default FMA contraction has nothing to fuse.
"""
import numpy as np
from numba import cuda

from ...runtime import device
from . import launch2
from .cast import _rint
from .pack import pack_into

U64 = np.uint64
KEY_POS_INF = 0xFF800000  # order key of +inf; NaN keys lie beyond the keys of ±inf
KEY_NEG_INF = 0x007FFFFF
KEY_ZERO = 0x80000000  # key of +0.0
LANES = 64


@cuda.jit(device=True, cache=True)
def _key(u):
    """Order-preserving key (uint64 below 2**32) of the float32 bits ``u``."""
    u = U64(u)
    return u ^ U64(0xFFFFFFFF) if u >> U64(31) else u ^ U64(0x80000000)


@cuda.jit(device=True, cache=True)
def _param_index(p, k, j, bp, bk, bq, kb, qb):
    """Flat index into the parameter grid of element ``(p, k, j)``."""
    jb = j if bq == 1 else j // bq
    return ((p // bp) * kb + k // bk) * qb + jb


@cuda.jit(cache=True)
def _key_kernel(u3, bp, bk, bq, key_lo, key_hi, lanes, kmin, kmax):
    """Key min/max per block of the keys in ``[key_lo, key_hi]`` (slot = block * lanes + lane)."""
    P, K, Q = u3.shape
    kb, qb = (K + bk - 1) // bk, (Q + bq - 1) // bq
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    lane = (cuda.blockIdx.y * cuda.gridDim.x + cuda.blockIdx.x) % lanes
    cur, lo, hi = -1, U64(0), U64(0)
    for r in range(y0, P * K, sy):
        p, k = r // K, r % K
        for j in range(x0, Q, sx):
            key = _key(u3[p, k, j])
            if key < key_lo or key > key_hi:
                continue
            t = _param_index(p, k, j, bp, bk, bq, kb, qb) * lanes + lane
            if t != cur:
                if cur >= 0:
                    cuda.atomic.min(kmin, cur, np.uint32(lo))
                    cuda.atomic.max(kmax, cur, np.uint32(hi))
                cur, lo, hi = t, key, key
            else:
                lo, hi = min(lo, key), max(hi, key)
    if cur >= 0:
        cuda.atomic.min(kmin, cur, np.uint32(lo))
        cuda.atomic.max(kmax, cur, np.uint32(hi))


@cuda.jit(cache=True)
def _quantize_kernel(x3, bp, bk, bq, scale, zero, qmin, qmax, magic, fake, out3, nan):
    P, K, Q = x3.shape
    kb, qb = (K + bk - 1) // bk, (Q + bq - 1) // bq
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for r in range(y0, P * K, sy):
        p, k = r // K, r % K
        for j in range(x0, Q, sx):
            t = _param_index(p, k, j, bp, bk, bq, kb, qb)
            v, s, z = x3[p, k, j], scale[t], zero[t]
            if v != v:
                nan[0] = 1
            d = v / s
            q = _rint(abs(d), magic)
            q = (-q if d < 0 else q) + z
            q = qmin if q < qmin else q
            q = qmax if q > qmax else q
            q = z if q != q else q
            out3[p, k, j] = (q - z) * s if fake else q


@cuda.jit(cache=True)
def _dequantize_kernel(c3, bp, bk, bq, scale, zero, out3):
    P, K, Q = c3.shape
    kb, qb = (K + bk - 1) // bk, (Q + bq - 1) // bq
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for r in range(y0, P * K, sy):
        p, k = r // K, r % K
        for j in range(x0, Q, sx):
            t = _param_index(p, k, j, bp, bk, bq, kb, qb)
            out3[p, k, j] = (np.float32(c3[p, k, j]) - zero[t]) * scale[t]


def _vector(a):
    """The grid-shaped float32 parameters ``a`` as a flat device array."""
    if device.is_device(a):
        return device.wrap(a, "scale").reshape(a.size)
    return cuda.to_device(np.ascontiguousarray(a, np.float32).reshape(-1))


def _from_key(key):
    key = np.asarray(key, np.uint32)
    bits = np.where(key & np.uint32(0x80000000), key ^ np.uint32(0x80000000), ~key)
    return bits.astype(np.uint32).view(np.float32)


def _keys(u3, blocks, grid_size, lo, hi, init_min, init_max):
    lanes = LANES if grid_size == 1 else 1
    kmin = cuda.to_device(np.full(grid_size * lanes, init_min, np.uint32))
    kmax = cuda.to_device(np.full(grid_size * lanes, init_max, np.uint32))
    bp, bk, bq = blocks
    P, K, Q = u3.shape
    grid, threads = launch2(Q, P * K)
    _key_kernel[grid, threads](u3, bp, bk, bq, U64(lo), U64(hi), lanes, kmin, kmax)
    kmin = kmin.copy_to_host().reshape(grid_size, lanes).min(axis=1)
    return kmin, kmax.copy_to_host().reshape(grid_size, lanes).max(axis=1)


def minmax(x3, blocks, out_min, out_max):
    """See ``fastq.kernels.cpu.quant``.  Returns ``(has_nan, has_inf)``."""
    u3 = x3.view(np.uint32)
    kmin, kmax = _keys(u3, blocks, out_min.size, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    has_nan = bool((kmax > KEY_POS_INF).any() or (kmin < KEY_NEG_INF).any())
    has_inf = bool((kmax == KEY_POS_INF).any() or (kmin == KEY_NEG_INF).any())
    if has_nan or has_inf:  # the finite values only, and 0
        kmin, kmax = _keys(u3, blocks, out_min.size, KEY_NEG_INF + 1, KEY_POS_INF - 1,
                           KEY_ZERO, KEY_ZERO)
    out_min[...] = np.minimum(_from_key(kmin).reshape(out_min.shape), 0)
    out_max[...] = np.maximum(_from_key(kmax).reshape(out_max.shape), 0)
    return has_nan, has_inf


def _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, fake, out3):
    bp, bk, bq = blocks
    P, K, Q = x3.shape
    nan = cuda.to_device(np.zeros(1, np.int32))
    grid, threads = launch2(Q, P * K)
    _quantize_kernel[grid, threads](x3, bp, bk, bq, _vector(scale3), _vector(zero3),
                                    np.float32(qmin), np.float32(qmax), np.float32(2.0 ** 23),
                                    bool(fake), out3, nan)
    return bool(nan.copy_to_host()[0])


def quantize(x3, blocks, scale3, zero3, qmin, qmax, bits, out, nan_free=False):
    """See ``fastq.kernels.cpu.quant``.  Returns whether a NaN was met (the GPU always looks:
    ``nan_free`` is accepted and unused).  4/2-bit codes go through a device code array,
    then ``fastq.kernels.cuda.pack.pack_into`` (two kernels, same bytes)."""
    if bits >= 8:
        return _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, False, out)
    codes = device.device_array(x3.shape, np.int8 if qmin < 0 else np.uint8)
    nan = _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, False, codes)
    pack_into(codes.reshape(codes.size), bits, out)
    return nan


def fake_quantize(x3, blocks, scale3, zero3, qmin, qmax, out3, nan_free=False):
    """See ``fastq.kernels.cpu.quant``.  Returns whether a NaN was met (``nan_free`` unused)."""
    return _quantize_any(x3, blocks, scale3, zero3, qmin, qmax, True, out3)


def dequantize(codes3, blocks, scale3, zero3, out3):
    """See ``fastq.kernels.cpu.quant``."""
    bp, bk, bq = blocks
    P, K, Q = codes3.shape
    grid, threads = launch2(Q, P * K)
    _dequantize_kernel[grid, threads](codes3, bp, bk, bq, _vector(scale3), _vector(zero3),
                                      out3)
