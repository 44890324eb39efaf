"""fastq on Dask arrays: ``import fastq.dask as fqd`` (needs ``pip install "fastq[dask]"``).

Lazy in, lazy out: every function builds a Dask graph (checking its arguments at once)
and nothing runs until the result is computed, on any Dask scheduler
(``dask.distributed`` included).  Results equal fastq's in-memory results bit for bit:
ranges are reduced across chunks before the parameters are computed, by the same code
the in-memory path runs (``fastq.dask.quantize``).  Each task shares the cores out with
the scheduler's other threads (``fastq.dask.tasks``).

``import fastq`` does not import this package, and this package imports Dask only when
a function is called.
"""
from .calibrate import fit
from .elementwise import cast, metrics
from .files import from_npy
from .qtensor import DaskQTensor
from .quantize import choose_qparams, dequantize, fake_quantize, quantize

__all__ = ["quantize", "dequantize", "fake_quantize", "cast", "choose_qparams", "metrics",
           "DaskQTensor", "from_npy", "fit"]
