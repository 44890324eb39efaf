"""fastq: JIT-compiled kernels for tensor quantization and low-precision floats.

``import fastq`` compiles nothing: kernels compile on first use and are cached on disk.
The package is layered, each layer importing only those below it: ``core`` (pure
definitions), ``runtime`` (process state), ``kernels`` (``cpu`` and ``cuda`` twins),
``backend``, ``ops`` (the public operations), then the workflows and ``cli``.
"""
from .ops import (Metrics, PerBlock, PerChannel, PerGroup, PerTensor, QParams, QTensor, cast,
                  choose_qparams, dequantize, fake_quantize, metrics, pack, quantize, to_host,
                  unpack)
from .calibration import Calibrator, Quantizer, quantize_model
from .runtime.threads import get_num_threads, set_num_threads
from .io import gguf, load, save

__version__ = "0.1.0"

__all__ = ["cast", "set_num_threads", "get_num_threads", "pack", "unpack", "metrics", "Metrics",
           "quantize", "dequantize", "fake_quantize", "choose_qparams", "QTensor", "QParams",
           "PerTensor", "PerChannel", "PerGroup", "PerBlock", "to_host",
           "Calibrator", "Quantizer", "quantize_model", "save", "load", "gguf"]
