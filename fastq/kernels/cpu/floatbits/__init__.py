"""The float casts' element kernels on integer bit views (CPU), behind the twin entry
``fastq.kernels.cpu.cast``: the per-element rounding rules (``rounding``, shared with
``minifloat`` and ``blocks/microscale``) and the block loops that apply them."""
