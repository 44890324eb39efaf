"""The block formats' public side (float8, OCP MX, NVFP4, NF4, GGML legacy and K-quants):
one module per family, each with ``quantize(x, dtype, **options) -> QTensor``,
``dequantize(qt, backend) -> float32 array`` and ``codes(qt)``, reached through the
registry in :mod:`fastq.ops.blocks`."""
