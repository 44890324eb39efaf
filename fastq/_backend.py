"""Backend selection: one set of public functions, twin kernel modules behind them.

``fastq._cpu`` is always there; ``fastq._cuda`` is imported on the first GPU use only.
"""
import importlib

from . import _device

BACKENDS = ("auto", "cpu", "cuda")


def check_backend(backend):
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def resolve(backend, *arrays):
    """The concrete backend name for ``backend`` given the data arrays."""
    check_backend(backend)
    if backend == "auto":
        return "cuda" if any(_device.is_device(a) for a in arrays) else "cpu"
    return backend


def module(name, kernel_module):
    """Import ``fastq._<name>.<kernel_module>`` (e.g. ``cpu``, ``cast``)."""
    if name == "cuda":
        from . import _cuda_support

        _cuda_support.require_cuda()
    return importlib.import_module(f"fastq._{name}.{kernel_module}")
