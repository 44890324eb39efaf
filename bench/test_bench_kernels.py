"""Every operation of ``fastq.cli.bench`` (fastq and each peer) as a pytest-benchmark."""
import pytest

from fastq.cli.bench import cases

SIZE = int(__import__("os").environ.get("FASTQ_BENCH_SIZE", 1 << 24))
CASES = [(op, nbytes, name, fn) for op, nbytes, impls in cases(SIZE)
         for name, fn in impls.items()]


@pytest.mark.parametrize("op,nbytes,impl,fn", CASES, ids=[f"{c[0]}|{c[2]}" for c in CASES])
def test_throughput(benchmark, op, nbytes, impl, fn):
    benchmark.group = op
    benchmark.pedantic(fn, warmup_rounds=1, rounds=7)
    if benchmark.stats:  # (None under --benchmark-disable)
        benchmark.extra_info["GB/s"] = nbytes / benchmark.stats.stats.min / 1e9
