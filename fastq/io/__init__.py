"""Files (layer 6): ``fq.save`` / ``fq.load`` (safetensors), ``fq.gguf`` (GGUF),
ONNX weight quantization and the streaming model conversion of ``fastq quantize``."""
from . import gguf  # noqa: F401
from .files import load, save  # noqa: F401
