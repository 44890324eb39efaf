"""Backend selection: one set of public functions, twin kernel modules behind them.

``fastq._cpu`` is always there; ``fastq._cuda`` is imported on the first GPU use only.
"""
import importlib

BACKENDS = ("auto", "cpu", "cuda")


def is_device_array(x):
    """True for arrays that live on a CUDA device (``__cuda_array_interface__``)."""
    return hasattr(x, "__cuda_array_interface__")


def check_backend(backend):
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def resolve(backend, *arrays):
    """The concrete backend name for ``backend`` given the data arrays."""
    check_backend(backend)
    if backend == "auto":
        return "cuda" if any(is_device_array(a) for a in arrays) else "cpu"
    return backend


def module(name, kernel_module):
    """Import ``fastq._<name>.<kernel_module>`` (e.g. ``cpu``, ``cast``)."""
    if name == "cuda":
        from . import _cuda_support

        _cuda_support.require_cuda()
    return importlib.import_module(f"fastq._{name}.{kernel_module}")
