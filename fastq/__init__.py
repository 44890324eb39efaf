"""fastq: JIT-compiled kernels for tensor quantization and low-precision floats.

``import fastq`` compiles nothing: kernels compile on first use and are cached on disk.
"""
from ._casting import cast
from ._metrics import Metrics, metrics
from ._packing import pack, unpack
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["cast", "set_num_threads", "get_num_threads", "pack", "unpack", "metrics", "Metrics"]
