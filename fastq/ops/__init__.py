"""The public operations (layer 5): what ``fastq`` re-exports, for the layers above it
(workflows and the command line) to call as ``ops.quantize`` etc."""
from ..core.granularity import PerBlock, PerChannel, PerGroup, PerTensor  # noqa: F401
from .casting import cast  # noqa: F401
from .error_metrics import Metrics, metrics  # noqa: F401
from .packing import pack, unpack  # noqa: F401
from .qtensor import QParams, QTensor, to_host  # noqa: F401
from .quantization import choose_qparams, dequantize, fake_quantize, quantize  # noqa: F401
