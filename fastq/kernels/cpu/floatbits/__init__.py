"""The float casts' kernels on integer bit views (CPU), behind the twin entry
``fastq.kernels.cpu.cast``, which picks one: the per-element rounding rules
(``rounding``, shared with ``minifloat`` and ``blocks/microscale``) and the block loops
that apply them (``encode``: half to even or truncation, ``stochastic``, ``decode``,
``native``: on the CPU's conversion instructions)."""
