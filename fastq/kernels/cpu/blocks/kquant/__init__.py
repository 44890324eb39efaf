"""The CPU-only parts of the GGML K-quants: the scale searches of llama.cpp's
``make_qkx2_quants``, ``make_qx_quants`` and ``make_q3_quants`` run on vector lanes
(``search``, ``search_low``) and the q2_K/q3_K kernel module (``low``, loaded by the
backend as ``blocks.kquant.low``).  q4_K..q6_K's kernel module is
:mod:`fastq.kernels.cpu.blocks.kquants`, which has a CUDA twin."""
