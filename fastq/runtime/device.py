"""Device arrays for the CUDA backend: detect, wrap zero-copy, move, allocate; ``to_host``.

Nothing here imports ``numba.cuda`` until a device array is actually handled, so
``import fastq`` and every CPU call stay free of CUDA.  A CUDA array is anything with
``__cuda_array_interface__`` (CuPy, torch CUDA tensors, Numba device arrays), wrapped
without a copy by ``numba.cuda.as_cuda_array``; under Numba's CUDA simulator the
simulator's own device arrays (which lack the interface) count as device arrays too.
Results computed on the GPU are Numba device arrays (they expose the interface).
"""
import numpy as np

from ..core import checks
from ..core import formats


def is_device(x):
    """True for a CUDA array (or a CUDA-simulator device array)."""
    return hasattr(x, "__cuda_array_interface__") or _is_simulator_array(x)


def _is_simulator_array(x):
    return type(x).__name__ == "FakeCUDAArray" and ".simulator." in type(x).__module__


def _cuda():
    from numba import cuda
    return cuda


def wrap(x, name="x"):
    """A Numba device array viewing the memory of the CUDA array ``x`` (no copy)."""
    if _is_simulator_array(x):
        return x
    try:
        return _cuda().as_cuda_array(x)
    except Exception as exc:  # e.g. a dtype the interface cannot describe
        raise TypeError(f"{name}: cannot read this CUDA array: {exc}") from None


def float_input(x, name="x"):
    """``(array, on_host)``: a validated float array, device (wrapped) or host.

    Device arrays must be C-contiguous (non-contiguous device input raises ValueError);
    host arrays are validated only (``to_device`` copies them once everything is checked).
    """
    if not is_device(x):
        return checks.as_float_array(x, name), True
    a = wrap(x, name)
    if formats.format_of_dtype(a.dtype) is None:
        raise TypeError(
            f"{name} must be a float16, bfloat16, float32 or float64 array, got dtype {a.dtype}")
    if not a.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous when it lives on the GPU")
    return a, False


def to_device(a):
    """Copy the host array ``a`` to the device (native byte order, C order)."""
    a = checks.native_contiguous(a).reshape(a.shape)  # (ascontiguousarray makes 0-d 1-d)
    word = formats.format_of_dtype(a.dtype)
    if word is not None and formats.is_added_dtype(a.dtype):  # ml_dtypes: the bits
        return _cuda().to_device(a.view(word.word)).view(a.dtype)
    return _cuda().to_device(a)


def device_array(shape, dtype):
    """An uninitialized C-contiguous device array."""
    dtype = np.dtype(dtype)
    fmt = formats.format_of_dtype(dtype)
    if fmt is not None and formats.is_added_dtype(dtype):
        return _cuda().device_array(shape, fmt.word).view(dtype)
    return _cuda().device_array(shape, dtype)


def check_out(out, shape, dtype, name="out"):
    """Validate a preallocated device output: a CUDA array of the right dtype and shape
    (``fastq.core.checks.check_out_layout``), C-contiguous."""
    if out is None:
        return None
    if not is_device(out):
        raise TypeError(f"{name} must be a CUDA array when the computation runs on the GPU"
                        f" with device input, got {type(out).__name__}")
    out = wrap(out, name)
    checks.check_out_layout(out, shape, dtype, name)
    if not out.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous")
    return out


def to_host(a):
    """A device array as a NumPy array (one copy); host arrays and None unchanged."""
    if a is None or isinstance(a, np.ndarray):
        return a
    if is_device(a):
        d = wrap(a, "a")
        fmt = formats.format_of_dtype(d.dtype) if formats.is_added_dtype(d.dtype) else None
        if fmt is not None and d.size:
            return d.view(fmt.word).copy_to_host().view(d.dtype)
        return d.copy_to_host()
    return np.asarray(a)
