"""Block-format kernels (CPU): a block layout over the blocked view plus a small element
codec per format family; twins of :mod:`fastq.kernels.cuda.blocks`."""
