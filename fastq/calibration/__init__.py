"""Calibration and whole-model workflows (layer 6): ``Calibrator`` (quantization
parameters from a stream of batches), ``Quantizer`` (fit / transform) and
``quantize_model`` (recipes over a mapping of named tensors, with a size report)."""
from .calibrator import Calibrator  # noqa: F401
from .quantizer import Quantizer  # noqa: F401
from .model import quantize_model  # noqa: F401
