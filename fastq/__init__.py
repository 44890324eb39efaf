"""fastq: JIT-compiled kernels for tensor quantization and low-precision floats.

``import fastq`` compiles nothing: kernels compile on first use and are cached on disk.
"""
from ._casting import cast
from ._granularity import PerBlock, PerChannel, PerGroup, PerTensor
from ._qtensor import QParams, QTensor
from ._quantize import choose_qparams, dequantize, fake_quantize, quantize
from ._metrics import Metrics, metrics
from ._packing import pack, unpack
from ._threads import get_num_threads, set_num_threads
from ._device import to_host

__version__ = "0.1.0"

__all__ = ["cast", "set_num_threads", "get_num_threads", "pack", "unpack", "metrics", "Metrics",
           "quantize", "dequantize", "fake_quantize", "choose_qparams", "QTensor", "QParams",
           "PerTensor", "PerChannel", "PerGroup", "PerBlock", "to_host"]
