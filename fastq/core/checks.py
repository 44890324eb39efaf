"""Argument checks and array normalization shared by the public functions: one place,
and one wording, per rule."""
import numpy as np

from . import formats


def as_array(x, name="x"):
    """``np.asarray(x)`` with a clear TypeError for objects NumPy cannot make numeric."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like: {exc}") from None
    if a.dtype.hasobject or a.dtype.kind in "OSUMm" or a.dtype.type is np.void:
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    return a


def as_float_array(x, name="x"):
    """An ndarray of float16/bfloat16/float32/float64 (any layout or byte order)."""
    a = as_array(x, name)
    if formats.format_of_dtype(a.dtype) is None:
        raise TypeError(
            f"{name} must be a float16, bfloat16, float32 or float64 array, got dtype {a.dtype}")
    return a


def native_contiguous(a):
    """``a`` as a native-endian C-contiguous array, copied only when it is not one."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def check_out(out, shape, dtype, name="out"):
    """Validate a preallocated output array; returns it (or None)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    check_out_layout(out, shape, dtype, name)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return out


def check_out_layout(out, shape, dtype, name="out"):
    """The dtype and shape rule of every preallocated output (host or device)."""
    if out.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(out.shape)}")


def check_bool(value, name):
    """``value`` as a bool (a bool or NumPy bool), or TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def direct_target(out, *inputs):
    """True when kernels may write straight into ``out`` (C-contiguous, no overlap)."""
    return (out.flags.c_contiguous and out.dtype.isnative
            and not any(np.shares_memory(out, a) for a in inputs))


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_block_counts(nan, overflow, dtype, nan_policy):
    """Raise for what a block quantizer counted: ``nan`` blocks holding a NaN (unless
    ``nan_policy`` is "ignore"), ``overflow`` blocks whose float16 scale would overflow."""
    if nan and nan_policy == "raise":
        raise ValueError(f"x contains NaN ({nan} block(s) of {dtype!r}): use "
                         "nan_policy='ignore' to write them anyway")
    if overflow:
        raise ValueError(f"x holds {overflow} block(s) whose float16 scale would "
                         f"overflow in {dtype!r} (magnitudes too large, or inf)")
