"""Plain-NumPy reference of the SPEC's linear (affine) quantization conventions.

Independent of the package (it never imports ``fastq``): the conformance and property
tests compare fastq with these functions bit for bit.  Conventions (``SPEC.md``,
"Linear (affine) quantization"):

* the input is taken as float32 (exact for float16/bfloat16; float64 is rounded once);
* range ``[min(min(x), 0), max(max(x), 0)]`` per group, all arithmetic in float32;
* asymmetric ``scale = (rmax - rmin) / (qmax - qmin)`` (``rmax / n - rmin / n`` when the
  difference overflows), ``zero_point = clip(rint(qmin - rmin / scale), qmin, qmax)``;
* symmetric ``scale = max(|rmin|, rmax) / ((qmax - qmin) // 2)``, zero point 0 (signed) or
  the midpoint ``(qmax + qmin + 1) // 2`` (unsigned);
* a zero range gives ``scale = 1``; computed scales are floored at the smallest normal
  float32;
* ``q = clip(rint(x / scale) + zero_point, qmin, qmax)`` with a true float32 division and
  round-half-even (``np.rint``); ``x_hat = (q - zero_point) * scale`` in float32;
* blocked granularity follows ONNX: a partial last block, parameters of shape
  ``ceil(d / block)`` per dimension;
* 4- and 2-bit codes are packed C-order, two's complement, first element in the low bits.

Granularity is given as a plain tuple: ``"tensor"``, ``("channel", axis)``,
``("group", size, axis)`` or ``("block", block_shape)``.
"""
import math

import numpy as np

QRANGE = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1), "uint2": (0, 3),
}
BITS = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16,
        "int4": 4, "uint4": 4, "int2": 2, "uint2": 2}
CODE_DTYPE = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
              "int4": np.int8, "uint4": np.uint8, "int2": np.int8, "uint2": np.uint8}
DTYPES = tuple(QRANGE)
TINY = np.finfo(np.float32).tiny


def is_signed(dtype):
    return dtype.startswith("int")


def qrange(dtype, narrow_range=False):
    """``(qmin, qmax)``; ``narrow_range`` sets ``qmin = -qmax`` for signed dtypes."""
    qmin, qmax = QRANGE[dtype]
    if narrow_range and is_signed(dtype):
        qmin = -qmax
    return qmin, qmax


def normalize_axis(axis, ndim):
    if not -ndim <= axis < max(ndim, 1):
        raise IndexError(axis)
    return axis % ndim


def block_sizes(granularity, shape):
    """Per-dimension block sizes of a group/block granularity."""
    kind = granularity[0]
    if kind == "group":
        _, size, axis = granularity
        blocks = [1] * len(shape)
        blocks[normalize_axis(axis, len(shape))] = size
        return tuple(blocks)
    if kind == "block":
        return tuple(granularity[1])
    raise ValueError(granularity)


def param_shape(granularity, shape):
    """Shape of the scale and zero point (SPEC: "Scale / zero-point shapes")."""
    if granularity == "tensor":
        return ()
    if granularity[0] == "channel":
        return (shape[normalize_axis(granularity[1], len(shape))],)
    return tuple(math.ceil(d / b) for d, b in zip(shape, block_sizes(granularity, shape)))


def _block_reduce(ufunc, x, blocks):
    for ax, b in enumerate(blocks):
        if x.shape[ax] > 0:
            x = ufunc.reduceat(x, np.arange(0, x.shape[ax], b), axis=ax)
    return x


def value_range(x, granularity, ignore_nonfinite=False):
    """``(rmin, rmax)`` float32 arrays of the parameter shape, 0 always included."""
    x = np.asarray(x, dtype=np.float32)
    if ignore_nonfinite:
        x = np.where(np.isfinite(x), x, np.float32(0))
    if granularity == "tensor" or granularity[0] == "channel":
        if granularity == "tensor":
            x2 = x.reshape(1, -1)
        else:
            x2 = np.moveaxis(x, normalize_axis(granularity[1], x.ndim), 0)
            x2 = x2.reshape(x2.shape[0], math.prod(x2.shape[1:]))
        rmin = np.min(x2, axis=1, initial=np.float32(0))
        rmax = np.max(x2, axis=1, initial=np.float32(0))
        pshape = param_shape(granularity, x.shape)
        return rmin.reshape(pshape), rmax.reshape(pshape)
    blocks = block_sizes(granularity, x.shape)
    rmin = np.minimum(_block_reduce(np.minimum, x, blocks), np.float32(0))
    rmax = np.maximum(_block_reduce(np.maximum, x, blocks), np.float32(0))
    return rmin, rmax


def qparams_from_range(rmin, rmax, dtype, scheme="asymmetric", narrow_range=False):
    """float32 ``scale`` and integer ``zero_point`` (``None`` for signed symmetric)."""
    rmin = np.asarray(rmin, dtype=np.float32)
    rmax = np.asarray(rmax, dtype=np.float32)
    qmin, qmax = qrange(dtype, narrow_range)
    zero = rmax == rmin
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if scheme == "symmetric":
            amax = np.maximum(np.abs(rmin), np.abs(rmax))
            scale = amax / np.float32((qmax - qmin) // 2)
        else:
            n = np.float32(qmax - qmin)
            scale = (rmax - rmin) / n
            wide = np.isinf(scale)
            scale = np.where(wide, rmax / n - rmin / n, scale)
    scale = np.where(zero, np.float32(1), np.maximum(scale, TINY)).astype(np.float32)
    cdt = CODE_DTYPE[dtype]
    if scheme == "symmetric":
        if is_signed(dtype):
            return scale, None
        return scale, np.full(scale.shape, (qmax + qmin + 1) // 2, dtype=cdt)
    zp = np.rint(np.float32(qmin) - rmin / scale)
    return scale, np.clip(zp, qmin, qmax).astype(cdt)


def expand(param, granularity, shape):
    """A parameter array broadcast (ONNX ``reshape_input``) to the input's shape."""
    param = np.asarray(param)
    if granularity == "tensor":
        return param
    if granularity[0] == "channel":
        dims = [1] * len(shape)
        dims[normalize_axis(granularity[1], len(shape))] = param.size
        return param.reshape(dims)
    for ax, b in enumerate(block_sizes(granularity, shape)):
        param = np.repeat(param, b, axis=ax).take(np.arange(shape[ax]), axis=ax)
    return param


def quantize_codes(x, scale, zero_point, dtype, granularity="tensor", narrow_range=False,
                   nan_to_zero_point=False):
    """``clip(rint(x / scale) + zero_point, qmin, qmax)`` as the code dtype."""
    x = np.asarray(x, dtype=np.float32)
    s = expand(np.asarray(scale, np.float32), granularity, x.shape)
    zp = 0 if zero_point is None else expand(zero_point, granularity, x.shape).astype(np.float64)
    qmin, qmax = qrange(dtype, narrow_range)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = np.rint(x / s).astype(np.float64) + zp
    q = np.clip(q, qmin, qmax)
    if nan_to_zero_point:
        q = np.where(np.isnan(q), zp, q)
    return q.astype(CODE_DTYPE[dtype])


def dequantize(codes, scale, zero_point, granularity="tensor"):
    """``(q - zero_point) * scale`` in float32."""
    codes = np.asarray(codes)
    q = codes.astype(np.int32)
    if zero_point is not None:
        q = q - expand(zero_point, granularity, codes.shape).astype(np.int32)
    s = expand(np.asarray(scale, np.float32), granularity, codes.shape)
    with np.errstate(over="ignore"):  # near float32's max a step can round past it
        return (q.astype(np.float32) * s).astype(np.float32)


def quantize(x, dtype, granularity="tensor", scheme="asymmetric", narrow_range=False,
             nan_policy="raise"):
    """``(codes, scale, zero_point)`` as fastq's ``quantize`` computes them."""
    x = np.asarray(x, dtype=np.float32)
    ignore = nan_policy == "ignore"
    rmin, rmax = value_range(x, granularity, ignore_nonfinite=ignore)
    scale, zp = qparams_from_range(rmin, rmax, dtype, scheme, narrow_range)
    codes = quantize_codes(x, scale, zp, dtype, granularity, narrow_range,
                           nan_to_zero_point=ignore)
    return codes, scale, zp


def fake_quantize(x, dtype, granularity="tensor", scheme="asymmetric", narrow_range=False):
    codes, scale, zp = quantize(x, dtype, granularity, scheme, narrow_range)
    return dequantize(codes, scale, zp, granularity)


def pack(codes, bits):
    """C-order codes packed low bits first; the last byte padded with zero bits."""
    per_byte = 8 // bits
    flat = np.asarray(codes).ravel().view(np.uint8) & np.uint8((1 << bits) - 1)
    padded = np.zeros(-(-flat.size // per_byte) * per_byte, dtype=np.uint8)
    padded[:flat.size] = flat
    lanes = padded.reshape(-1, per_byte).astype(np.uint16)
    shifts = np.arange(per_byte, dtype=np.uint16) * bits
    return (lanes << shifts).sum(axis=1).astype(np.uint8)


def unpack(packed, bits, count, signed):
    per_byte = 8 // bits
    packed = np.asarray(packed, dtype=np.uint8)
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    vals = ((packed[:, None] >> shifts) & ((1 << bits) - 1)).ravel()[:count].astype(np.int16)
    if signed:
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
        return vals.astype(np.int8)
    return vals.astype(np.uint8)


def stored_data(codes, dtype):
    """What ``QTensor.data`` holds: the codes, packed for 4- and 2-bit dtypes."""
    bits = BITS[dtype]
    if bits < 8:
        return pack(codes, bits)
    return np.asarray(codes, dtype=CODE_DTYPE[dtype])


def mae(x, x_hat):
    return float(np.mean(np.abs(np.asarray(x, np.float64) - np.asarray(x_hat, np.float64))))


def as_fastq(fq, granularity):
    """The fastq granularity object for a reference granularity tuple (``fq`` passed in)."""
    if granularity == "tensor":
        return fq.PerTensor()
    kind = granularity[0]
    if kind == "channel":
        return fq.PerChannel(granularity[1])
    if kind == "group":
        return fq.PerGroup(granularity[1], axis=granularity[2])
    return fq.PerBlock(tuple(granularity[1]))


def assert_matches(qt, x, dtype, granularity="tensor", scheme="asymmetric",
                   narrow_range=False, nan_policy="raise"):
    """Assert a fastq QTensor equals this reference bit for bit (codes, data, parameters)."""
    codes, scale, zero_point = quantize(x, dtype, granularity, scheme, narrow_range, nan_policy)
    got_scale = np.asarray(qt.scale)
    assert got_scale.dtype == np.float32, got_scale.dtype
    assert got_scale.shape == scale.shape, (got_scale.shape, scale.shape)
    assert np.array_equal(got_scale.view(np.uint32), scale.view(np.uint32)), (got_scale, scale)
    if zero_point is None:
        assert qt.zero_point is None, qt.zero_point
    else:
        got_zp = np.asarray(qt.zero_point)
        assert got_zp.dtype == zero_point.dtype and got_zp.shape == zero_point.shape
        assert np.array_equal(got_zp, zero_point), (got_zp, zero_point)
    got_codes = np.asarray(qt.codes())
    assert got_codes.dtype == codes.dtype and got_codes.shape == codes.shape
    assert np.array_equal(got_codes, codes)
    assert np.array_equal(np.asarray(qt.data).ravel(), stored_data(codes, dtype).ravel())
    assert tuple(qt.shape) == codes.shape and qt.dtype == dtype
    return codes, scale, zero_point
