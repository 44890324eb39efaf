"""``fq.pack`` / ``fq.unpack``: 4-bit and 2-bit integer codes stored packed in bytes."""
import numpy as np

from ..core import checks
from ..backend import CPU, CUDA
from ..runtime import device
from ..runtime import pool
from ..core.codes import check_pack_bits, code_range


def pack(codes, bits=4, signed=None):
    """Pack integer codes into bytes, ``bits`` per code, first code in the low bits.

    Parameters
    ----------
    codes : array_like of integers
        Any shape; packed in C order.  A CUDA array (C-contiguous) is packed on the GPU
        into a device array.
    bits : {4, 2, 8}
        Field width.  ``8`` is the identity layout (one code per byte), accepted so that
        code paths need no special case for 8-bit dtypes.
    signed : bool, optional
        Range the codes must lie in: ``-2**(bits-1) .. 2**(bits-1)-1`` (two's complement)
        when signed, ``0 .. 2**bits-1`` otherwise.  Default: signed unless ``codes`` has
        an unsigned integer dtype.

    Returns
    -------
    ndarray of uint8
        1-D, exactly ``ceil(codes.size * bits / 8)`` bytes; byte ``j`` holds codes
        ``j*p .. j*p+p-1`` (``p = 8 // bits``) from the low bits up, as two's complement
        fields; a partial last byte is padded with zero bits.  This is the layout of ONNX
        int4/uint4 tensors (``onnx.numpy_helper``/``onnx.helper.pack_float32_to_4bit``),
        torch ``quint4x2`` and TFLite int4.

    Raises
    ------
    TypeError
        ``codes`` is not an integer array.
    ValueError
        ``bits`` is not 8, 4 or 2, or a code is outside the range above (nothing is
        packed).
    """
    bits = check_pack_bits(bits)
    on_gpu = device.is_device(codes)
    a = device.wrap(codes, "codes") if on_gpu else checks.as_array(codes, "codes")
    if a.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {a.dtype}")
    if signed is None:
        signed = a.dtype.kind == "i"
    elif not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool or None, got {type(signed).__name__}")
    qmin, qmax = code_range(bits, signed)
    if on_gpu:
        return _pack_on_device(a, bits, signed, qmin, qmax)
    if a.size and (int(a.min()) < qmin or int(a.max()) > qmax):
        raise ValueError(
            f"codes must lie in [{qmin}, {qmax}] for {'signed' if signed else 'unsigned'} "
            f"{bits}-bit codes, got values in [{a.min()}, {a.max()}]")
    flat = np.ascontiguousarray(a.astype(np.int8 if signed else np.uint8, copy=False))
    flat = flat.reshape(-1)
    if bits == 8:
        return flat.view(np.uint8).copy() if np.shares_memory(flat, a) else flat.view(np.uint8)
    out = pool.host_array(-(-flat.size * bits // 8), np.uint8)
    CPU.kernels("pack").pack_into(flat, bits, out)
    return out


def _pack_on_device(a, bits, signed, qmin, qmax):
    """``pack`` of a C-contiguous CUDA array: a device array of the same bytes."""
    if not a.is_c_contiguous():
        raise ValueError("codes must be C-contiguous when it lives on the GPU")
    kernels = CUDA.kernels("pack")
    flat = device.device_array(a.size, np.int8 if signed else np.uint8)
    if not kernels.narrow_codes(a.reshape(a.size), qmin, qmax, flat):
        raise ValueError(
            f"codes must lie in [{qmin}, {qmax}] for {'signed' if signed else 'unsigned'} "
            f"{bits}-bit codes")
    if bits == 8:
        return flat.view(np.uint8)
    out = device.device_array(-(-a.size * bits // 8), np.uint8)
    kernels.pack_into(flat, bits, out)
    return out


def unpack(packed, bits=4, count=None, signed=True):
    """Unpack ``count`` integer codes stored ``bits`` to a byte by :func:`pack`.

    Parameters
    ----------
    packed : array_like of uint8 (or int8)
        The bytes, any shape (read in C order).  A CUDA array (uint8/int8, C-contiguous)
        is unpacked on the GPU into a device array.
    bits : {4, 2, 8}
        Field width (``8``: one code per byte).
    count : int, optional
        Number of codes, at most ``packed.size * 8 // bits`` (the default).
    signed : bool
        Sign-extend each field (two's complement) into int8, or zero-extend into uint8.

    Returns
    -------
    ndarray
        1-D int8 (signed) or uint8 array of ``count`` codes.

    Raises
    ------
    TypeError
        ``packed`` is not an integer array.
    ValueError
        ``bits`` is not 8, 4 or 2; ``packed`` holds a value outside 0..255; ``count`` is
        negative or larger than the packed capacity.
    """
    bits = check_pack_bits(bits)
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {type(signed).__name__}")
    flat, on_gpu = _packed_bytes(packed)
    capacity = flat.size * 8 // bits
    if count is None:
        count = capacity
    elif isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    count = int(count)
    if not 0 <= count <= capacity:
        raise ValueError(f"count must be between 0 and {capacity} (the codes {flat.size} "
                         f"bytes hold at {bits} bits), got {count}")
    dtype = np.int8 if signed else np.uint8
    if on_gpu:
        out = device.device_array(count, dtype)
        if bits == 8:
            out.view(np.uint8).copy_to_device(flat[:count])
        elif count:
            CUDA.kernels("pack").unpack_into(flat, bits, bool(signed),
                                                        out.view(np.uint8))
        return out
    if bits == 8:
        return flat[:count].copy().view(dtype)
    out = pool.host_array(count, dtype)
    CPU.kernels("pack").unpack_into(flat, bits, bool(signed), out.view(np.uint8))
    return out


def _packed_bytes(packed):
    """``(1-D uint8 view, on_gpu)`` of ``packed``: a host copy only for wider integers."""
    if device.is_device(packed):
        a = device.wrap(packed, "packed")
        if a.dtype.kind not in "iu" or a.dtype.itemsize != 1 or not a.is_c_contiguous():
            raise TypeError("packed must be a C-contiguous uint8 array when it lives on the "
                            f"GPU, got dtype {a.dtype}")
        return a.reshape(a.size).view(np.uint8), True
    a = checks.as_array(packed, "packed")
    if a.dtype.kind not in "iu":
        raise TypeError(f"packed must be a uint8 array, got dtype {a.dtype}")
    if a.dtype.itemsize != 1:
        if a.size and (int(a.min()) < 0 or int(a.max()) > 255):
            raise ValueError("packed must hold bytes (values 0..255)")
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8), False
