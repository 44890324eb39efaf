"""Block formats (GGML, OCP MX, NVFP4, NF4, float8): the registry that ``fq.quantize``,
``fq.dequantize`` and :class:`fastq.QTensor` reach them through.

Each format is a block layout over the blocked view that linear quantization uses, plus
a small element codec; its public side is a module of :mod:`fastq.ops.formats` with three
functions, ``quantize(x, dtype, **options) -> QTensor``, ``dequantize(qt, backend) ->
float32 array`` and ``codes(qt)``, imported on the first use of one of its formats.
"""
import importlib

# format name -> the module of fastq.ops.formats that implements it, e.g. {"q8_0": "ggml"}
FORMATS = {}
FORMATS.update(dict.fromkeys(("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"),
                             "ggml"))  # GGML legacy formats and K-quants
FORMATS.update(dict.fromkeys(("q2_K", "q3_K"), "ggml"))  # the 2- and 3-bit K-quants
FORMATS.update(dict.fromkeys(("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"), "minifloat"))
FORMATS.update(dict.fromkeys(("mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "nvfp4"), "mx"),
               mxfp4="mxfp4", nf4="nf4")


def is_block_format(dtype):
    """Whether ``dtype`` names a block format."""
    return isinstance(dtype, str) and dtype in FORMATS


def codec(dtype):
    """The module implementing the block format ``dtype``."""
    return importlib.import_module(f"fastq.ops.formats.{FORMATS[dtype]}")
