"""Layer 3, the kernels: arithmetic only, writing into ``out`` arrays.  ``cpu`` (Numba,
parallel) and ``cuda`` (numba.cuda) are twins with the same module and function names;
they never import each other, and ``fastq.backend`` chooses between them."""
