"""Block-format kernels (CUDA twins of :mod:`fastq.kernels.cpu.blocks`, same names)."""
