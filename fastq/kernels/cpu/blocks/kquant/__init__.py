"""The CPU-only parts of the GGML K-quants: the scale searches of llama.cpp's
``make_qkx2_quants`` (``search``, q4_K/q5_K), ``make_qx_quants`` (``search_q6``) and
those of q2_K/q3_K (``search_low``), run on vector lanes, and the q2_K/q3_K kernel
module (``low``, loaded by the backend as ``blocks.kquant.low``).  q4_K..q6_K's kernel
module is :mod:`fastq.kernels.cpu.blocks.kquants`, which has a CUDA twin."""
