"""Numba CPU kernels, by family: ``cast`` (over the loops and rounding rules of
``floatbits/``), ``pack``, ``metrics``, ``quant`` (linear quantization, over the row
kernels of ``linear/``) and ``blocks/`` (block formats).

Twin of ``fastq.kernels.cuda``: the same module and function names.  Kernels are
arithmetic: the operations validate and allocate, kernels write into the arrays given.
"""
