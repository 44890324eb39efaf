"""``QTensor`` (codes + scale + zero point) and ``QParams``."""
from dataclasses import dataclass

import numpy as np

from . import _granularity as G

# name: (qmin, qmax, bits, code dtype)
INT_DTYPES = {
    "int8": (-128, 127, 8, np.int8), "uint8": (0, 255, 8, np.uint8),
    "int16": (-32768, 32767, 16, np.int16), "uint16": (0, 65535, 16, np.uint16),
    "int4": (-8, 7, 4, np.int8), "uint4": (0, 15, 4, np.uint8),
    "int2": (-2, 1, 2, np.int8), "uint2": (0, 3, 2, np.uint8),
}


def dtype_info(dtype, name="dtype"):
    if not isinstance(dtype, str) or dtype not in INT_DTYPES:
        raise ValueError(f"{name} must be one of {tuple(INT_DTYPES)}, got {dtype!r}")
    return INT_DTYPES[dtype]


@dataclass(frozen=True)
class QParams:
    """Scale (float32) and zero point (integer array, or None for signed symmetric)."""
    scale: np.ndarray
    zero_point: object


class QTensor:
    """Quantized tensor: ``x ~ (codes - zero_point) * scale`` per block of ``granularity``.

    ``data`` holds the codes (packed bytes, first element in the low bits, for 4- and
    2-bit dtypes), ``scale`` is float32 and ``zero_point`` an integer array of the code
    dtype (int8/uint8 for 4/2-bit), both of the granularity's parameter shape, or
    ``None`` for signed symmetric quantization.
    """

    def __init__(self, data, dtype, scale, zero_point, shape, granularity):
        self.data, self.dtype, self.scale, self.zero_point = data, dtype, scale, zero_point
        self.shape, self.granularity = tuple(shape), granularity

    @classmethod
    def from_codes(cls, codes, dtype, scale, zero_point=None, granularity="tensor"):
        """Wrap existing (unpacked) integer ``codes``, checking ranges and shapes."""
        from ._quantize import check_static_params, pack_codes
        qmin, qmax, bits, code_dtype = dtype_info(dtype)
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iu":
            raise TypeError(f"codes must be an integer array, got dtype {codes.dtype}")
        if codes.size and (codes.min() < qmin or codes.max() > qmax):
            raise ValueError(f"codes must lie in [{qmin}, {qmax}] for {dtype}")
        granularity = G.as_granularity(granularity)
        scale, zero_point = check_static_params(scale, zero_point, dtype, codes.shape,
                                                granularity, qmin, qmax)
        codes = np.require(codes.astype(code_dtype, copy=False), requirements="C")
        data = pack_codes(codes, bits) if bits < 8 else codes
        return cls(data, dtype, scale, zero_point, codes.shape, granularity)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def codes(self):
        """The codes unpacked, in the original shape (int8/uint8, int16/uint16)."""
        qmin, _, bits, code_dtype = INT_DTYPES[self.dtype]
        if bits == 8 or bits == 16:
            return self.data
        from . import _backend, _device, _memory
        on_gpu = _device.is_device(self.data)
        out = _memory.empty(self.size, code_dtype, on_gpu)
        _backend.module("cuda" if on_gpu else "cpu", "pack").unpack_into(
            self.data, bits, qmin < 0, out)
        return out.reshape(self.shape)

    def dequantize(self):
        from ._quantize import dequantize
        return dequantize(self)

    @property
    def nbytes(self):
        zp = 0 if self.zero_point is None else self.zero_point.nbytes
        return int(self.data.nbytes + self.scale.nbytes + zp)

    @property
    def bits_per_element(self):
        return 8 * self.nbytes / self.size if self.size else 0.0

    def __repr__(self):
        return (f"QTensor(dtype={self.dtype!r}, shape={self.shape}, "
                f"granularity={self.granularity!r}, nbytes={self.nbytes})")
