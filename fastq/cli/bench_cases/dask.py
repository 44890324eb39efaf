"""The Dask row: ``fastq.dask`` on a 4-chunk array, threaded scheduler at two threads
("fastq") and at one ("fastq 1 thread"), fastq's own threads at one per task, next to
the in-memory ``fq.quantize`` of the same data; skipped without Dask."""
import numpy as np


def cases(x, peers):
    try:
        import dask.array as da
    except ImportError:
        return []
    from ... import ops as fq
    from ...dask import quantize as dask_quantize
    from ...runtime import threads

    m = x.reshape(4, -1)
    dx = da.from_array(m, chunks=(1, m.shape[1]))  # 4 chunks
    qd = dask_quantize(dx, "int8", scheme="symmetric", granularity=fq.PerChannel(0))

    def on(workers):
        def run():
            saved = threads.get_num_threads()
            threads.set_num_threads(1)  # the cores are Dask's threads: one each
            try:
                return qd.data.compute(scheduler="threads", num_workers=workers)
            finally:
                threads.set_num_threads(saved)
        return run
    row = {"fastq": on(2), "fastq 1 thread": on(1),
           "fastq in memory": lambda: fq.quantize(m, "int8", scheme="symmetric",
                                                  granularity=fq.PerChannel(0))}
    return [("dask quantize per-channel int8, 4 chunks", 5 * np.size(m), row)]
