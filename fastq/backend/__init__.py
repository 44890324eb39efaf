"""Backends: one set of public operations, twin kernel packages behind them.

A :class:`Backend` names where a call runs and gives the operations what they need
there: its kernel modules (``fastq.kernels.cpu.<family>`` or
``fastq.kernels.cuda.<family>``, same names and functions), and the allocation and
copies of that place.  ``select`` chooses one per call.  ``fastq.kernels.cuda`` (and
``numba.cuda``) is imported on the first GPU use only.
"""
import importlib

from ..runtime import device, kernel_cache, pool, threads

BACKENDS = ("auto", "cpu", "cuda")


class Backend:
    """Where a call runs: ``"cpu"`` (host memory) or ``"cuda"`` (device memory)."""
    __slots__ = ("name", "on_gpu", "_modules")

    def __init__(self, name):
        self.name, self.on_gpu = name, name == "cuda"
        self._modules = {}  # family -> kernel module, once imported

    def kernels(self, family):
        """The kernel module of ``family`` (``"cast"``, ``"quant"``, ``"pack"``,
        ``"metrics"``, ``"blocks.<format>"``) for this backend."""
        module = self._modules.get(family)  # (a dict lookup on every call after the first)
        if module is None:
            if self.on_gpu:
                from .cuda_support import require_cuda
                require_cuda()
            else:  # (before a cached kernel that refers to it loads)
                threads.start_layer()
            kernel_cache.drop_stale()  # (once per process: before a kernel module loads)
            module = importlib.import_module(f"fastq.kernels.{self.name}.{family}")
            self._modules[family] = module
        return module

    def empty(self, shape, dtype):
        """An uninitialized C-contiguous array of this backend's memory."""
        return device.device_array(shape, dtype) if self.on_gpu else pool.host_array(shape, dtype)

    def to_device(self, a):
        """A host array where this backend computes (the array itself on the CPU)."""
        return device.to_device(a) if self.on_gpu else a

    def __repr__(self):
        return f"Backend({self.name!r})"


CPU, CUDA = Backend("cpu"), Backend("cuda")


def check_backend(backend):
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def select(backend, *arrays):
    """The :class:`Backend` for the argument ``backend`` given the data arrays:
    ``"auto"`` runs on the GPU when any of them is a CUDA array."""
    check_backend(backend)
    if backend == "auto":
        return CUDA if any(device.is_device(a) for a in arrays) else CPU
    return CUDA if backend == "cuda" else CPU


def where(a):
    """The :class:`Backend` whose memory holds the array ``a``."""
    return CUDA if device.is_device(a) else CPU
