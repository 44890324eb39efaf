"""Kernel caches older than any kernel source are dropped before kernels load
(``fastq._cache``): Numba alone would keep machine code that inlined an older module."""
import os

from fastq import _cache


def test_stale_cache_files_are_dropped(tmp_path, monkeypatch):
    for folder in ("_cpu", "_cuda"):
        (tmp_path / folder / "__pycache__").mkdir(parents=True)
    (tmp_path / "__pycache__").mkdir()
    for name in ("_formats.py", "_fpenv.py", "_cpu/quant.py", "_cpu/_word.py", "_cuda/cast.py"):
        (tmp_path / name).write_text("")
    old = ["_cpu/__pycache__/quant.f-1.py311.nbi", "_cpu/__pycache__/quant.f-1.py311.1.nbc",
           "__pycache__/_fpenv._swap-20.py311.nbi"]
    for name in old + ["_cpu/__pycache__/quant.cpython-311.pyc",
                       "_cuda/__pycache__/cast.g-3.py311.nbi"]:
        (tmp_path / name).write_text("")
    for name in old:  # written before the last edit of _word.py
        os.utime(tmp_path / name, ns=(10**18, 10**18))
    os.utime(tmp_path / "_cpu/_word.py", ns=(2 * 10**18, 2 * 10**18))
    os.utime(tmp_path / "_cuda/__pycache__/cast.g-3.py311.nbi", ns=(3 * 10**18, 3 * 10**18))
    monkeypatch.setattr(_cache, "_HERE", str(tmp_path))
    _cache.drop_stale()
    assert not any((tmp_path / name).exists() for name in old)
    assert (tmp_path / "_cpu/__pycache__/quant.cpython-311.pyc").exists()  # not Numba's
    assert (tmp_path / "_cuda/__pycache__/cast.g-3.py311.nbi").exists()  # newer than all
    monkeypatch.setattr(_cache, "_HERE", str(tmp_path / "missing"))
    _cache.drop_stale()  # (no tree: nothing to do, no error)
