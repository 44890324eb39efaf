"""Drop kernel cache files that may hold stale machine code.

Numba keys a cached kernel by the timestamp of its own source file only, but kernels
inline code from the modules they import (``_cpu._word``, ``_cpu.ranges``, the layout
constants of ``_formats``): after an edit of those alone, the cache would hand back the
old machine code.  Before the first kernel module loads, cache files older than the
newest kernel source are removed (in-tree caches: a checkout or an editable install;
an install rewrites every file, so its caches start fresh anyway).  Stats only: no
compiling, about a millisecond.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_KERNEL_SOURCES = ("_cpu", "_cuda", "_formats.py", "_fpenv.py")


def drop_stale():
    try:
        sources = []
        for name in _KERNEL_SOURCES:
            path = os.path.join(_HERE, name)
            if os.path.isdir(path):
                sources += [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")]
            else:
                sources.append(path)
        newest = max(os.stat(p).st_mtime_ns for p in sources)
        for folder in (_HERE, os.path.join(_HERE, "_cpu"), os.path.join(_HERE, "_cuda")):
            cache = os.path.join(folder, "__pycache__")
            if not os.path.isdir(cache):
                continue
            for f in os.listdir(cache):
                path = os.path.join(cache, f)
                if f.endswith((".nbi", ".nbc")) and os.stat(path).st_mtime_ns < newest:
                    os.remove(path)
    except OSError:  # (read-only tree, a file gone meanwhile: leave it to Numba)
        pass
