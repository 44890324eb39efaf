"""``QTensor`` (codes + scale + zero point) and ``QParams``; ``fq.to_host``."""
from dataclasses import dataclass

import numpy as np

from ..backend import CPU, select, where
from ..core import checks
from ..core.codes import INT_DTYPES, dtype_info
from ..core.granularity import as_granularity
from ..runtime import device
from ..runtime.fpenv import ieee_default
from . import blocks
from .linear import (check_static_params, dequantize_codes, dequantize_planned, packed_codes,
                     unpacked_codes)


@dataclass(frozen=True)
class QParams:
    """Scale (float32) and zero point (integer array, or None for signed symmetric)."""
    scale: np.ndarray
    zero_point: object


class QTensor:
    """Quantized tensor: ``x ~ (codes - zero_point) * scale`` per block of ``granularity``.

    ``data`` holds the codes (packed bytes, first element in the low bits, for 4- and
    2-bit dtypes; a block format's own bytes), ``scale`` is float32 and ``zero_point``
    an integer array of the code dtype (int8/uint8 for 4/2-bit), both of the
    granularity's parameter shape, or ``None`` for signed symmetric quantization.
    ``tensor_scale`` is a block format's second-level scale (NVFP4), else None.
    """

    def __init__(self, data, dtype, scale, zero_point, shape, granularity, tensor_scale=None):
        self.data, self.dtype, self.scale, self.zero_point = data, dtype, scale, zero_point
        self.shape, self.granularity = tuple(shape), granularity
        self.tensor_scale = tensor_scale

    @classmethod
    def from_codes(cls, codes, dtype, scale, zero_point=None, granularity="tensor"):
        """Wrap existing (unpacked) integer ``codes``, checking ranges and shapes."""
        qmin, qmax, bits, code_dtype = dtype_info(dtype)
        codes = checks.as_array(codes, "codes")
        if codes.dtype.kind not in "iu":
            raise TypeError(f"codes must be an integer array, got dtype {codes.dtype}")
        if codes.size and (codes.min() < qmin or codes.max() > qmax):
            raise ValueError(f"codes must lie in [{qmin}, {qmax}] for {dtype}")
        granularity = as_granularity(granularity)
        scale, zero_point = check_static_params(scale, zero_point, dtype, codes.shape,
                                                granularity, qmin, qmax)
        codes = np.require(codes.astype(code_dtype, copy=False), requirements="C")
        data = packed_codes(codes, bits) if bits < 8 else codes
        return cls(data, dtype, scale, zero_point, codes.shape, granularity)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def codes(self):
        """The codes unpacked, in the original shape (int8/uint8, int16/uint16; a block
        format: its element codes)."""
        if blocks.is_block_format(self.dtype):
            return blocks.codec(self.dtype).codes(self)
        codes = INT_DTYPES[self.dtype]
        if not codes.packed:
            return self.data
        out = unpacked_codes(self.data, codes.bits, codes.qmin < 0, self.size, codes.code_dtype)
        return out.reshape(self.shape)

    # this QTensor's planned dequantization (``fastq.ops.linear.PreparedDequantize``),
    # once made: valid while its parts are the objects it was made of
    _prepared = None

    def __getstate__(self):  # (pickle, copy: without the prepared call, made again)
        state = self.__dict__.copy()
        state.pop("_prepared", None)
        return state

    def dequantize(self, backend="auto"):
        """``(codes - zero_point) * scale`` in float32, in the original shape."""
        if backend == "auto" or backend == "cpu":
            # (a repeated call, its plan cached: its kernels set the default floating-point
            # environment themselves, so no wrapper here; the rest is integer work)
            p = self._prepared
            if (p is not None and p.data is self.data and p.scale is self.scale
                    and p.zero_point is self.zero_point and p.shape is self.shape
                    and p.dtype is self.dtype and p.granularity is self.granularity):
                return p.run()
            if type(self.data) is np.ndarray:
                out, self._prepared = dequantize_planned(
                    self.data, self.dtype, self.scale, self.zero_point, self.shape,
                    self.granularity)
                if out is not None:
                    return out
        return self._dequantize(backend)

    @ieee_default
    def _dequantize(self, backend):
        if blocks.is_block_format(self.dtype):
            return blocks.codec(self.dtype).dequantize(self, backend)
        if type(self.data) is np.ndarray and (backend == "auto" or backend == "cpu"):
            out = CPU.empty(self.shape, np.float32)  # (host codes on the CPU: the short path)
            if out.size:
                dequantize_codes(self.codes(), self.scale, self.zero_point, self.shape,
                                 self.granularity, CPU, out)
            return out
        run = select(backend, self.data)
        on_host = where(self.data) is CPU
        qt = self
        if run.on_gpu:  # codes to the device (when on the host); the small parameters to the host
            qt = QTensor(run.to_device(qt.data), qt.dtype, device.to_host(qt.scale),
                         device.to_host(qt.zero_point), qt.shape, qt.granularity)
        elif not on_host:  # backend="cpu" asked for a QTensor that lives on the GPU
            qt = to_host(qt)
        out = run.empty(qt.shape, np.float32)
        if qt.size:
            dequantize_codes(qt.codes(), qt.scale, qt.zero_point, qt.shape, qt.granularity,
                             run, out)
        return device.to_host(out) if run.on_gpu and on_host else out

    @property
    def nbytes(self):
        """Bytes of data, scale, zero point (and tensor scale); a block format whose
        scales live inside its data counts the data alone."""
        if blocks.is_block_format(self.dtype) and getattr(
                blocks.codec(self.dtype), "SCALES_IN_DATA", False):
            return int(self.data.nbytes)
        total = self.data.nbytes + np.asarray(self.scale).nbytes
        for extra in (self.zero_point, self.tensor_scale):
            total += 0 if extra is None else np.asarray(extra).nbytes
        return int(total)

    @property
    def bits_per_element(self):
        return 8 * self.nbytes / self.size if self.size else 0.0

    def __repr__(self):
        return (f"QTensor(dtype={self.dtype!r}, shape={self.shape}, "
                f"granularity={self.granularity!r}, nbytes={self.nbytes})")


def checked_qtensor(data, dtype, scale, zero_point, shape, granularity):
    """A :class:`QTensor` of parts already checked and converted (``shape`` a tuple):
    the constructor's work without its conversions, for the repeated-call paths."""
    qt = object.__new__(QTensor)
    qt.data, qt.dtype, qt.scale, qt.zero_point = data, dtype, scale, zero_point
    qt.shape, qt.granularity, qt.tensor_scale = shape, granularity, None
    return qt


def to_host(a):
    """Bring a result of GPU work to host memory.

    Parameters
    ----------
    a : CUDA array, QTensor, QParams, ndarray or None
        A device array becomes a NumPy array (one copy); a :class:`fastq.QTensor` or
        :class:`fastq.QParams` gets host ``data``/``scale``/``zero_point``; host arrays and
        ``None`` come back unchanged.

    Returns
    -------
    numpy.ndarray, QTensor or QParams
    """
    if isinstance(a, QTensor):
        return QTensor(to_host(a.data), a.dtype, to_host(a.scale), to_host(a.zero_point),
                       a.shape, a.granularity, to_host(a.tensor_scale))
    if isinstance(a, QParams):
        return QParams(to_host(a.scale), to_host(a.zero_point))
    return device.to_host(a)
